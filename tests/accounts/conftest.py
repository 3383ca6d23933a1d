import json

import pytest

TIMEZONE_MIDDLEWARE = "notifwatch.accounts.middleware.TimezoneMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@pytest.fixture(autouse=True)
def timezone_middleware(settings):
    """Install the middleware where settings.py will have it (a no-op once it does)."""
    if TIMEZONE_MIDDLEWARE not in settings.MIDDLEWARE:
        at = settings.MIDDLEWARE.index(AUTH_MIDDLEWARE) + 1
        settings.MIDDLEWARE = [
            *settings.MIDDLEWARE[:at],
            TIMEZONE_MIDDLEWARE,
            *settings.MIDDLEWARE[at:],
        ]


@pytest.fixture
def teams(db):
    from notifwatch.accounts.models import Team

    return {name: Team.objects.create(name=name) for name in ("Billing", "CRM admins", "Support")}


def audit_text(entries) -> str:
    """Everything an audit entry stores, for "the password is not in there" checks."""
    return json.dumps(
        [[e.action, e.old, e.new, e.detail, e.target_label, e.actor_label] for e in entries]
    )
