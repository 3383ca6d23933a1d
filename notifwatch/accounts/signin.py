"""Signing in: login throttling (django-axes) and the audit trail of sign-ins.

django-axes counts failed sign-ins per username and client address and, past
`AXES_FAILURE_LIMIT`, refuses that pair for `AXES_COOLOFF_TIME` (settings.py). It sees every
login form (ours and the admin's) because it sits in `authenticate()`; its handler class is the
hook it offers, so the audit entries are written there: `user.login`, `user.login_failed`
(the username tried and the address, never the password) and `user.locked_out`.
"""

import ipaddress
import logging
from datetime import timedelta

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifwatch.accounts.actions import record_failed_sign_in, record_lockout, record_sign_in

logger = logging.getLogger(__name__)


class ThrottledBackend(AxesStandaloneBackend):
    """axes' backend (first in AUTHENTICATION_BACKENDS): refuses a locked-out pair.

    `authenticate()` called in code without a request (the test client's `login()`, a shell)
    has no client to count or lock out, so it goes on to the password check unthrottled; every
    login form passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The address a request came from, as far as it can be trusted.

    Without a proxy (NOTIFWATCH_PROXY_COUNT=0) that is the connection's address. Behind N
    reverse proxies, each appends to X-Forwarded-For the address it received the request from;
    the client can write anything in front of that, so only the Nth entry from the right (what
    the outermost proxy saw) is taken.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.NOTIFWATCH_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < proxies:
        return remote  # not through all the proxies said to be in front (a direct call)
    try:
        return str(ipaddress.ip_address(forwarded[-proxies]))
    except ValueError:
        return remote


def tried_username(credentials: dict | None) -> str:
    field = get_user_model().USERNAME_FIELD
    return str((credentials or {}).get(field) or "")[:150]


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """The page a locked-out sign-in gets: what happened and when to try again (429)."""
    minutes = int(settings.AXES_COOLOFF_TIME / timedelta(minutes=1))
    return render(
        request,
        "accounts/locked_out.html",
        {
            "username": tried_username(credentials),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "minutes": minutes,
        },
        status=429,
    )


class AuditedAxesHandler(AxesDatabaseHandler):
    """axes' database handler, writing each sign-in, failure and lockout to the audit trail."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        # Set by axes' backend when it refused the pair before checking any password.
        refused_while_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or refused_while_locked:
            # A locked pair's further tries are not written one by one: its lockout entry says
            # it was stopped, and a flood of them must not fill the trail.
            return
        username, address = tried_username(credentials), request.axes_ip_address
        record_failed_sign_in(username, address)
        if request.axes_locked_out:
            logger.warning("sign-in locked out: %r from %s", username, address)
            record_lockout(
                username,
                address,
                failures=request.axes_failures_since_start,
                minutes=int(settings.AXES_COOLOFF_TIME / timedelta(minutes=1)),
            )

    def user_logged_in(self, sender, request, user, **kwargs) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        if "REMOTE_ADDR" not in request.META:
            # A bare request built in code (the test client's force_login), not a person
            # signing in over a connection: nothing to audit.
            return
        record_sign_in(user, request.axes_ip_address)
