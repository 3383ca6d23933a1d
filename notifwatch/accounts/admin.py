from django.contrib import admin

from notifwatch.accounts.models import Membership, Team
from notifwatch.failures.admin import AuditedConfigAdmin
from notifwatch.ingest.admin import ReadOnlyAdmin


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Roles change on the Users page, whose actions audit them and keep one admin active."""

    list_display = ("user", "role", "personal_data_granted", "time_zone")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email")


@admin.register(Team)
class TeamAdmin(AuditedConfigAdmin):
    list_display = ("name",)
    search_fields = ("name",)
    filter_horizontal = ("members",)
