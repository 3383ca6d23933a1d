from django.contrib import admin

from notifwatch.failures.models import UnknownCode
from notifwatch.ingest.admin import ReadOnlyAdmin


@admin.register(UnknownCode)
class UnknownCodeAdmin(ReadOnlyAdmin):
    list_display = ("provider", "code", "occurrences", "first_seen", "last_seen", "sample_message")
    list_filter = ("provider",)
    search_fields = ("code", "sample_message")
