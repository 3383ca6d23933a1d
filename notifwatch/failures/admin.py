from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifwatch.audit.actions import record_audit
from notifwatch.failures.models import (
    FailureGroup,
    Fingerprint,
    GroupHistory,
    Occurrence,
    OwnerRule,
    TimingWindow,
    UnknownCode,
)
from notifwatch.ingest.admin import ReadOnlyAdmin


@admin.register(UnknownCode)
class UnknownCodeAdmin(ReadOnlyAdmin):
    list_display = ("provider", "code", "occurrences", "first_seen", "last_seen", "sample_message")
    list_filter = ("provider",)
    search_fields = ("code", "sample_message")


@admin.register(FailureGroup)
class FailureGroupAdmin(ReadOnlyAdmin):
    """Exceptions change only through the app's actions, which write their history."""

    list_display = (
        "id",
        "title",
        "kind",
        "status",
        "team",
        "assignee",
        "occurrences",
        "customers_not_reached",
        "last_seen",
        "page",
    )
    list_filter = ("kind", "status", "team")
    list_select_related = ("team", "assignee")
    search_fields = ("=id", "title", "purpose")
    show_full_result_count = False

    @admin.display(description="In the app")
    def page(self, obj: FailureGroup):
        return format_html('<a href="{}">open</a>', reverse("exception_detail", args=[obj.pk]))


@admin.register(Fingerprint)
class FingerprintAdmin(ReadOnlyAdmin):
    list_display = ("version", "value", "group", "created_at")
    list_filter = ("version",)
    list_select_related = ("group",)
    search_fields = ("value", "=group__id")
    show_full_result_count = False


@admin.register(Occurrence)
class OccurrenceAdmin(ReadOnlyAdmin):
    list_display = ("id", "group_id", "occurred_at", "notification_id", "raw_event_id", "subject")
    search_fields = ("=group__id", "=customer_id", "subject")
    # Occurrences are the biggest of these tables: no full count, no joins on the list.
    show_full_result_count = False


@admin.register(GroupHistory)
class GroupHistoryAdmin(ReadOnlyAdmin):
    list_display = ("at", "group", "kind", "actor", "rule", "comment")
    list_filter = ("kind",)
    list_select_related = ("group", "actor")
    search_fields = ("=group__id", "rule", "comment")
    show_full_result_count = False


def plain(value):
    """A form value as JSON the audit trail can hold."""
    if isinstance(value, models.Model):
        return value.pk
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class AuditedConfigAdmin(admin.ModelAdmin):
    """Settings an admin edits here: every save and delete leaves an audit entry."""

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        # The admin runs this inside its own transaction: the entry and the change stand together.
        old = (
            {name: plain(form.initial.get(name)) for name in form.changed_data} if change else None
        )
        new = {name: plain(form.cleaned_data.get(name)) for name in form.changed_data}
        super().save_model(request, obj, form, change)
        action = "changed" if change else "created"
        name = obj._meta.model_name
        record_audit(actor=request.user, action=f"{name}.{action}", target=obj, old=old, new=new)

    def delete_model(self, request: HttpRequest, obj) -> None:
        with transaction.atomic():
            record_audit(actor=request.user, action=f"{obj._meta.model_name}.deleted", target=obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for obj in queryset:
                record_audit(
                    actor=request.user, action=f"{obj._meta.model_name}.deleted", target=obj
                )
            super().delete_queryset(request, queryset)


@admin.register(OwnerRule)
class OwnerRuleAdmin(AuditedConfigAdmin):
    list_display = (
        "position",
        "team",
        "kind",
        "source",
        "channel",
        "purpose",
        "reason_category",
        "fix_owner",
    )
    list_select_related = ("team", "source")
    list_filter = ("team", "kind")


@admin.register(TimingWindow)
class TimingWindowAdmin(AuditedConfigAdmin):
    list_display = ("source", "purpose", "seconds")
    list_select_related = ("source",)
    list_filter = ("source",)
