"""Show every date in the signed-in user's time zone."""

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from notifwatch.accounts.access import membership_of


def user_zone(user) -> zoneinfo.ZoneInfo | None:
    """The zone chosen in the user's preferences; None for the server's TIME_ZONE."""
    membership = membership_of(user)
    if membership is None or not membership.time_zone:
        return None
    try:
        return zoneinfo.ZoneInfo(membership.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # A zone the server's tz database no longer has: the server's zone beats a 500.
        return None


class TimezoneMiddleware:
    """Activate the user's zone for this request (so `|date` and `{% now %}` use it).

    Goes after AuthenticationMiddleware. The membership it reads is cached on request.user, so
    the view's own role check costs no second query.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = user_zone(request.user)
        if zone is None:
            timezone.deactivate()
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            # The thread serves other requests (and, in tests, other code) next: none of them
            # may inherit this user's zone.
            timezone.deactivate()
