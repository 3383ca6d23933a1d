from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.models import Schedule
from notifwatch.worker.tasks import MAX_ATTEMPTS


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules are created by the worker from the code (scheduling.REGISTRY); here they are
    watched, paused (`enabled`) or run now."""

    list_display = (
        "name",
        "enabled",
        "interval_seconds",
        "next_run_at",
        "last_succeeded_at",
        "health",
        "consecutive_failures",
        "last_run",
    )
    list_filter = ("enabled",)
    actions = ["run_now"]
    fields = (
        "name",
        "task_path",
        "interval_seconds",
        "enabled",
        "next_run_at",
        "last_enqueued_at",
        "last_run",
        "last_started_at",
        "last_succeeded_at",
        "last_failed_at",
        "health",
        "last_attempt",
        "consecutive_failures",
        "retry_at",
        "last_error",
    )
    readonly_fields = tuple(f for f in fields if f not in {"enabled", "next_run_at"})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="health")
    def health(self, obj: Schedule) -> str:
        if not obj.consecutive_failures:
            return "ok" if obj.last_succeeded_at else "not run yet"
        if obj.retry_at:
            return (
                f"failing: attempt {obj.last_attempt + 1}/{MAX_ATTEMPTS} at {obj.retry_at:%H:%M:%S}"
            )
        if obj.last_attempt >= MAX_ATTEMPTS:
            return f"failing: gave up after {MAX_ATTEMPTS} attempts, next tick retries"
        return "failing"

    @admin.display(description="last run")
    def last_run(self, obj: Schedule) -> str:
        if not obj.last_result_id:
            return "-"
        result = DBTaskResult.objects.filter(pk=obj.last_result_id).only("status").first()
        if result is None:
            return "(pruned)"
        url = reverse("admin:django_tasks_database_dbtaskresult_change", args=[result.pk])
        return format_html('<a href="{}">{}</a>', url, result.get_status_display())

    @admin.action(description="Run now (at the next scheduler look)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.update(next_run_at=timezone.now())
        self.message_user(request, f"{count} schedule(s) due now.")
