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
