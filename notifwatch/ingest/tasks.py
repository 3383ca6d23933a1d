"""Background work of the ingest app, run by the django-tasks database worker."""

from django_tasks import task

from notifwatch.ingest.actions import reprocess_quarantined
from notifwatch.ingest.models import Source


@task()
def reprocess_source(source_id: int, actor_id: int | None = None) -> dict:
    """Run a source's quarantined raw events through its current mapping (the button)."""
    from django.contrib.auth import get_user_model

    source = Source.objects.get(pk=source_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    result = reprocess_quarantined(source, actor=actor, actor_label="reprocess task")
    return {"attempted": result.attempted, "outcomes": result.outcomes}
