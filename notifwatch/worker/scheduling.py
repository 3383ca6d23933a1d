"""Periodic jobs, retries and the stale-task sweep on top of django-tasks-db.

django-tasks runs tasks but has no schedules, retries or recovery of tasks whose worker died.
These are the small pieces it lacks. The database is the queue and the lock:

- A `Schedule` row per periodic job. Every worker process runs the scheduler loop; a due tick is
  claimed by moving `next_run_at` on with a conditional UPDATE that matches the value the worker
  read. Only the worker whose UPDATE touched one row enqueues the run, so several workers on
  several machines run each tick once.
- Each run is the task `tasks.run_scheduled(name, attempt)`, which calls the job's plain callable,
  records the outcome on the schedule and, on failure, re-enqueues itself with a backoff (the
  retry policy lives there, with the task: this module enqueues it and nothing imports back).
- A tick is skipped while the job's previous run (or its pending retry) is unfinished, so a slow
  pass or a backoff is never overtaken by the next tick.
- `sweep_stale_tasks` puts a task back in the queue when the worker running it died.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.models import Schedule
from notifwatch.worker.tasks import run_scheduled

logger = logging.getLogger("notifwatch.worker")

# A task whose worker died this many times is marked failed instead of being run again.
MAX_CLAIMS = 3


@dataclass(frozen=True)
class Job:
    name: str
    task_path: str  # a plain callable without arguments; imported only when it runs
    interval_seconds: int


REGISTRY: tuple[Job, ...] = (
    Job("run_checks", "notifwatch.failures.detection.run_checks", 60),
    Job("refresh_counts", "notifwatch.deliveries.counts.refresh_notification_counts", 60),
    Job("sweep_stale_tasks", "notifwatch.worker.scheduling.sweep_stale_tasks", 60),
    Job("retry_raw_events", "notifwatch.ingest.tasks.retry_unprocessed_raw_events", 60),
    Job("prune", "notifwatch.audit.retention.prune", 24 * 3600),
    # notifwatch watching itself: a part turning failing (or recovering) alerts once.
    Job("watch_health", "notifwatch.health.alerting.watch_health", 60),
    Job("alert_on_history", "notifwatch.alerts.triggers.alert_on_history", 60),
    # Each digest goes at its subscriber's own weekday and hour: checked often enough to be on time.
    Job("send_weekly_digests", "notifwatch.alerts.digest.send_weekly_digests", 5 * 60),
    Job("deliver_alerts", "notifwatch.alerts.delivery.deliver_alerts", 60),
    # Checked every 15 minutes: each subscription's digest goes at its own hour and time zone.
    Job("send_daily_digests", "notifwatch.alerts.delivery.send_daily_digests", 15 * 60),
)


def stale_task_seconds() -> int:
    """A task RUNNING for longer than this lost its worker (NOTIFWATCH_STALE_TASK_SECONDS)."""
    return settings.NOTIFWATCH_STALE_TASK_SECONDS


def ensure_schedules(now: datetime | None = None, registry: tuple[Job, ...] = REGISTRY) -> None:
    """Create the missing schedule rows (due at once); the code decides path and interval.

    Idempotent and safe when several workers start together. `enabled` and `next_run_at` of
    existing rows are left alone (they may be set in the admin).
    """
    now = now or timezone.now()
    for job in registry:
        schedule, created = Schedule.objects.get_or_create(
            name=job.name,
            defaults={
                "task_path": job.task_path,
                "interval_seconds": job.interval_seconds,
                "next_run_at": now,
            },
        )
        if not created and (
            schedule.task_path != job.task_path or schedule.interval_seconds != job.interval_seconds
        ):
            Schedule.objects.filter(pk=schedule.pk).update(
                task_path=job.task_path, interval_seconds=job.interval_seconds
            )


def enqueue_due(now: datetime | None = None) -> list[str]:
    """Enqueue a run of every enabled schedule that is due; return the names this call enqueued."""
    now = now or timezone.now()
    due = Schedule.objects.filter(enabled=True, next_run_at__lte=now)
    return [schedule.name for schedule in due if claim_and_enqueue(schedule, now)]


def claim_and_enqueue(schedule: Schedule, now: datetime) -> bool:
    """Claim the tick of `schedule` as read (its `next_run_at`) and enqueue its run.

    Returns False when another worker claimed it first, or when the previous run is unfinished
    (the tick is then consumed without a run). Claim and enqueue commit together.
    """
    try:
        with transaction.atomic():
            claimed = Schedule.objects.filter(
                pk=schedule.pk, enabled=True, next_run_at=schedule.next_run_at
            ).update(
                next_run_at=now + timedelta(seconds=schedule.interval_seconds),
                last_enqueued_at=now,
            )
            if claimed != 1:
                return False
            if previous_run_unfinished(schedule.last_result_id, now):
                logger.info("Schedule %s: previous run unfinished, tick skipped", schedule.name)
                return False
            result = run_scheduled.enqueue(schedule.name, 1)
            Schedule.objects.filter(pk=schedule.pk).update(last_result_id=str(result.id))
    except OperationalError as exc:
        # SQLite busy for longer than its timeout: nothing was committed; the next tick retries.
        logger.warning("Schedule %s: could not claim the tick (%s)", schedule.name, exc)
        return False
    logger.info("Schedule %s: enqueued run %s", schedule.name, result.id)
    return True


def previous_run_unfinished(result_id: str, now: datetime) -> bool:
    """True while the run `result_id` waits (or waits for its retry) or runs on a live worker."""
    if not result_id:
        return False
    cutoff = now - timedelta(seconds=stale_task_seconds())
    return (
        DBTaskResult.objects.filter(pk=result_id)
        .filter(
            # A RUNNING task older than the stale timeout is left to the sweep; it does not
            # block the schedule (otherwise a dead sweep run would block the sweep forever).
            status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING],
        )
        .exclude(status=TaskResultStatus.RUNNING, started_at__lt=cutoff)
        .exists()
    )


class StaleTask(Exception):
    """Recorded on a task whose worker died too many times while running it."""


def sweep_stale_tasks(now: datetime | None = None, timeout: int | None = None) -> dict:
    """Put back in the queue the tasks whose worker died while running them.

    django-tasks-db marks a claimed task RUNNING with `started_at` and appends the worker id to
    `worker_ids`; a worker that is killed never finishes it. Each such task RUNNING for longer
    than `timeout` seconds is made READY again (another worker picks it up), or FAILED once
    MAX_CLAIMS workers died on it. Each change is a conditional UPDATE on the state read, so
    concurrent sweeps change each task once.
    """
    now = now or timezone.now()
    timeout = stale_task_seconds() if timeout is None else timeout
    cutoff = now - timedelta(seconds=timeout)
    stale = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, started_at__lt=cutoff, finished_at__isnull=True
    ).values_list("pk", "started_at", "worker_ids", "task_path")
    counts = {"requeued": 0, "failed": 0}
    for pk, started_at, worker_ids, task_path in stale:
        same_claim = DBTaskResult.objects.filter(
            pk=pk, status=TaskResultStatus.RUNNING, started_at=started_at
        )
        if len(worker_ids) >= MAX_CLAIMS:
            changed = same_claim.update(
                status=TaskResultStatus.FAILED,
                finished_at=now,
                exception_class_path=f"{StaleTask.__module__}.{StaleTask.__qualname__}",
                traceback=(
                    f"StaleTask: {len(worker_ids)} workers died running this task "
                    f"({', '.join(worker_ids)}); not run again."
                ),
            )
            counts["failed"] += changed
        else:
            changed = same_claim.update(status=TaskResultStatus.READY)
            counts["requeued"] += changed
        if changed:
            logger.warning(
                "Task %s (%s) was RUNNING since %s on worker %s: %s",
                pk,
                task_path,
                started_at.isoformat(),
                worker_ids[-1] if worker_ids else "?",
                "failed" if len(worker_ids) >= MAX_CLAIMS else "queued again",
            )
    return counts
