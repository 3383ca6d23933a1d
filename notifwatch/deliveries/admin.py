from django.contrib import admin
from django.http import HttpRequest

from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.ingest.admin import ReadOnlyAdmin


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class RefInline(ReadOnlyInline):
    model = NotificationRef
    fields = ("name", "value")


class EventInline(ReadOnlyInline):
    model = DeliveryEvent
    fields = (
        "occurred_at",
        "event_type",
        "attempt",
        "provider",
        "provider_message_id",
        "error_code",
        "reason_key",
        "duplicate_count",
    )
    ordering = ("occurred_at", "id")


# Notifications and events are derived from raw events; editing them would break that link.
@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "notification_key",
        "source",
        "channel",
        "purpose",
        "customer_id",
        "final_status",
        "reason_category",
        "attempts",
        "duplicate_sends",
        "last_event_at",
    )
    list_filter = ("final_status", "channel", "counts_as_failure", "reason_category", "source")
    list_select_related = ("source",)
    # Exact matches only: each hits its own index instead of scanning the table.
    search_fields = ("=notification_key", "=customer_id", "=recipient", "=provider_message_id")
    show_full_result_count = False
    inlines = (RefInline, EventInline)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "event_type",
        "notification",
        "source",
        "attempt",
        "provider",
        "reason_category",
        "duplicate_count",
    )
    list_filter = ("event_type", "reason_category", "provider", "source")
    list_select_related = ("notification", "source")
    search_fields = ("=event_id", "=provider_message_id")
    raw_id_fields = ("notification", "raw_event")
    show_full_result_count = False


@admin.register(NotificationRef)
class NotificationRefAdmin(ReadOnlyAdmin):
    list_display = ("name", "value", "notification")
    list_filter = ("name",)
    list_select_related = ("notification",)
    search_fields = ("=value",)
    raw_id_fields = ("notification",)
