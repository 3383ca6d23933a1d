"""Periodic jobs run by `manage.py run_worker` through django-tasks (see scheduling.py)."""

from django.db import models


class Schedule(models.Model):
    """One periodic job. The row is the lock: a tick is claimed by moving `next_run_at` on
    with a conditional update that touches exactly one row (scheduling.enqueue_due)."""

    name = models.CharField(max_length=100, unique=True)
    # Dotted path of a plain callable with no arguments, run by tasks.run_scheduled.
    task_path = models.CharField(max_length=200)
    interval_seconds = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField()
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    # The DBTaskResult of the latest run (tick or retry); a tick is skipped while it is unfinished.
    last_result_id = models.CharField(max_length=64, blank=True)

    # Outcome of the latest run, for the admin.
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_succeeded_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_attempt = models.PositiveIntegerField(default=0, help_text="1 = first try of a tick.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When the pending retry runs; empty if none."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkerHeartbeat(models.Model):
    """One running worker process, as its scheduler thread last reported it.

    Upserted on every scheduler tick (a few seconds apart), so `last_seen_at` says whether any
    worker is alive: the health check reads the newest one. Rows of workers gone for a day are
    pruned when a worker starts.
    """

    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid} ({self.worker_id})"


class HeartbeatPing(models.Model):
    """The outgoing heartbeat (NOTIFWATCH_HEARTBEAT_URL) after a detection pass: how it went.

    One row per URL, so changing the setting starts a fresh record.
    """

    url = models.CharField(max_length=500, unique=True)
    last_attempt_at = models.DateTimeField()
    last_ok_at = models.DateTimeField(null=True, blank=True)
    # Empty after a ping that went through.
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.url
