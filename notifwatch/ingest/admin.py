from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from notifwatch.ingest.models import RawEvent, Source


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never edited here: changes go through action functions that write audit entries."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "kind", "credential_hint", "is_active", "updated_at")
    list_filter = ("kind", "is_active")
    search_fields = ("slug", "name")
    # The signing key is a secret; its hash and hint are enough to tell credentials apart.
    exclude = ("signing_key", "credential_hash")


@admin.register(RawEvent)
class RawEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "received_at", "transport", "outcome", "origin", "reason")
    list_filter = ("outcome", "transport", "source")
    list_select_related = ("source",)
    search_fields = ("=id", "=import_name", "=content_hash")
    # Counting every raw event on each list page is the slow part on big tables.
    show_full_result_count = False
    exclude = ("body",)
    readonly_fields = ("body_text_shown",)

    @admin.display(description="Body")
    def body_text_shown(self, obj: RawEvent):
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>',
            obj.body_text()[: 256 * 1024],
        )
