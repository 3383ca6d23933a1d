"""Background work of the ingest app, run by the django-tasks database worker."""

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from notifwatch.ingest.actions import reprocess_quarantined
from notifwatch.ingest.models import Outcome, RawEvent, Source
from notifwatch.ingest.processing import process_raw_event


@task()
def reprocess_source(source_id: int, actor_id: int | None = None) -> dict:
    """Run a source's quarantined raw events through its current mapping (the button)."""
    from django.contrib.auth import get_user_model

    source = Source.objects.get(pk=source_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    result = reprocess_quarantined(source, actor=actor, actor_label="reprocess task")
    return {"attempted": result.attempted, "outcomes": result.outcomes}


@task()
def process_stranded_raw_events(older_than_seconds: int = 60) -> int:
    """Process raw events stored but never interpreted (the web worker died in between)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    count = 0
    stranded = RawEvent.objects.filter(outcome=Outcome.RECEIVED, received_at__lt=cutoff)
    for raw in stranded.select_related("source").order_by("id")[:1000]:
        process_raw_event(raw)
        count += 1
    return count
