from django.utils import timezone

from notifwatch.accounts.access import membership_of


def role(request) -> dict:
    membership = membership_of(getattr(request, "user", None)) if hasattr(request, "user") else None
    # The zone TimezoneMiddleware activated for this user (or the server's), for the footer.
    return {"membership": membership, "time_zone_name": timezone.get_current_timezone_name()}
