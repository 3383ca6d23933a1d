"""The task every scheduled run goes through: run the job, record the outcome, retry on failure."""

import json
import logging
import traceback
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from notifwatch.worker.heartbeats import ping_heartbeat_url
from notifwatch.worker.models import Schedule

logger = logging.getLogger("notifwatch.worker")

# Retries: attempt n (1-based) failing is retried after 30 s x 2^(n-1), capped; attempt 5 is the last.
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 30 * 60
# The schedule whose every success pings NOTIFWATCH_HEARTBEAT_URL: the detection pass.
PINGED_AFTER = "run_checks"


def backoff_seconds(attempt: int) -> int:
    """Delay before retrying after attempt `attempt` (1-based) failed."""
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_CAP_SECONDS)


@task()
def run_scheduled(name: str, attempt: int = 1):
    """Run the job of schedule `name`; `attempt` is 1 for a tick, 2.. for its retries.

    On failure the error is recorded on the schedule, a retry is enqueued with a backoff (until
    MAX_ATTEMPTS), and the exception is raised again so the task result is FAILED with its
    traceback too.
    """
    schedule = Schedule.objects.get(name=name)
    Schedule.objects.filter(pk=schedule.pk).update(
        last_started_at=timezone.now(), last_attempt=attempt, retry_at=None
    )
    try:
        job = import_string(schedule.task_path)  # imported here: the job's module loads lazily
        result = job()
        # The result is stored as JSON; dates and decimals in a summary must not fail the run.
        result = json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except Exception as exc:
        record_failure(schedule, attempt, exc)
        raise
    Schedule.objects.filter(pk=schedule.pk).update(
        last_succeeded_at=timezone.now(), consecutive_failures=0, last_error=""
    )
    if name == PINGED_AFTER:
        ping_after_success()
    return result


def ping_after_success() -> None:
    """Tell the outside monitor a detection pass went through; its trouble never fails the pass."""
    try:
        ping_heartbeat_url()
    except Exception:
        logger.exception("Outgoing heartbeat: could not record the ping")


def record_failure(schedule: Schedule, attempt: int, exc: BaseException) -> None:
    now = timezone.now()
    error = "".join(traceback.format_exception(exc))
    with transaction.atomic():
        if attempt < MAX_ATTEMPTS:
            retry_at = now + timedelta(seconds=backoff_seconds(attempt))
            retry = run_scheduled.using(run_after=retry_at).enqueue(schedule.name, attempt + 1)
            header = f"Attempt {attempt}/{MAX_ATTEMPTS} failed; retry at {retry_at.isoformat()}."
            extra = {"retry_at": retry_at, "last_result_id": str(retry.id)}
        else:
            header = f"Attempt {attempt}/{MAX_ATTEMPTS} failed; gave up until the next tick."
            extra = {"retry_at": None}
        Schedule.objects.filter(pk=schedule.pk).update(
            last_failed_at=now,
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=f"{header}\n{error}",
            **extra,
        )
    logger.warning("Schedule %s: %s %s", schedule.name, header, exc)
