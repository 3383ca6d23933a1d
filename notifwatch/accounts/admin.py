from django.contrib import admin

from notifwatch.accounts.models import Membership


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "personal_data_granted")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email")
