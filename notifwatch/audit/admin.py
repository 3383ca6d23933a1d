from django.contrib import admin
from django.http import HttpRequest

from notifwatch.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Append-only: readable here, never added, changed or deleted."""

    list_display = ("at", "actor_label", "action", "target_type", "target_label")
    list_filter = ("action", "target_type")
    search_fields = ("=target_id", "actor_label", "action", "target_label")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
