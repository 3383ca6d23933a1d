"""Background work of the ingest app, run by the django-tasks database worker."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskContext, task

from notifwatch.ingest.actions import (
    PROCESSING_GRACE,
    error_line,
    error_text,
    give_up_on_raw_event,
    record_processing_error,
    reprocess_quarantined,
)
from notifwatch.ingest.models import Outcome, RawEvent, Source
from notifwatch.ingest.processing import process_raw_event

logger = logging.getLogger("notifwatch.worker")

# Attempt n (1-based) of a crashed raw event is followed by attempt n + 1 after 1, 2, 4, 8 ...
# minutes; the claim sets that time before processing, so a worker killed mid-way counts too.
RETRY_BACKOFF_SECONDS = 60
RETRY_BACKOFF_CAP_SECONDS = 60 * 60
# Rows per pass: a backlog (the worker was down) drains over a few minutes, in bounded passes.
RETRY_BATCH = 200


@task(takes_context=True)
def reprocess_source(context: TaskContext, source_id: int, actor_id: int | None = None) -> dict:
    """Run a source's quarantined raw events through its current mapping (the button)."""
    from django.contrib.auth import get_user_model

    source = Source.objects.get(pk=source_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    # The task's id names the run: run again after its worker died (the stale-task sweep),
    # it continues after the last chunk that worker committed.
    result = reprocess_quarantined(
        source, actor=actor, actor_label="reprocess task", run=f"task-{context.task_result.id}"
    )
    return result.as_dict()


def retry_backoff_seconds(attempt: int) -> int:
    """Delay before attempt `attempt` + 1 of a raw event processing crashed on."""
    return min(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1), RETRY_BACKOFF_CAP_SECONDS)


def retry_unprocessed_raw_events(now: datetime | None = None, batch: int = RETRY_BATCH) -> dict:
    """Process again the raw events a crash left `received` (a scheduled worker job).

    The request that stored a row processes it; a row still `received` after PROCESSING_GRACE
    was left by a crash (a bug, the database failing mid-way). Each is claimed with a
    conditional update on its attempt count, so concurrent workers process it once, and run
    in its own transaction. After NOTIFWATCH_RAW_RETRY_ATTEMPTS it is marked `failed`:
    counted on its source page and the overview, and reprocessed by hand once fixed.
    """
    now = now or timezone.now()
    limit = settings.NOTIFWATCH_RAW_RETRY_ATTEMPTS
    due = (
        RawEvent.objects.filter(outcome=Outcome.RECEIVED, received_at__lt=now - PROCESSING_GRACE)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
        .values_list("pk", "attempts")[:batch]
    )
    counts = {"processed": 0, "failed_again": 0, "gave_up": 0, "taken_by_another": 0}
    for raw_id, attempts in due:
        if attempts >= limit:
            # Its last attempt never reported back: the worker died while on it.
            gave_up = give_up_on_raw_event(raw_id, attempts, "the worker stopped while on it")
            counts["gave_up" if gave_up else "taken_by_another"] += 1
            continue
        outcome = retry_one(raw_id, attempts + 1, limit)
        counts[outcome] += 1
    return counts


def retry_one(raw_id: int, attempt: int, limit: int) -> str:
    claimed = RawEvent.objects.filter(
        pk=raw_id, outcome=Outcome.RECEIVED, attempts=attempt - 1
    ).update(
        attempts=attempt,
        next_attempt_at=timezone.now() + timedelta(seconds=retry_backoff_seconds(attempt)),
    )
    if claimed != 1:
        return "taken_by_another"
    try:
        with transaction.atomic():
            # Locked while it is processed (PostgreSQL): a late claim by another worker waits,
            # then finds the row settled or its attempt count moved on.
            raw = (
                RawEvent.objects.select_for_update(of=("self",))
                .select_related("source")
                .filter(pk=raw_id, outcome=Outcome.RECEIVED, attempts=attempt)
                .first()
            )
            if raw is None:
                return "taken_by_another"
            process_raw_event(raw)
    except Exception as exc:
        logger.warning(
            "Raw event %s: processing failed (attempt %s/%s)", raw_id, attempt, limit, exc_info=True
        )
        if attempt >= limit:
            give_up_on_raw_event(raw_id, attempt, error_line(exc), error_text(exc))
            return "gave_up"
        record_processing_error(raw_id, exc)
        return "failed_again"
    return "processed"
