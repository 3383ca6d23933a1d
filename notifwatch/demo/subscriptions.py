"""The demo's alert subscriptions, so assigning an exception in `make demo` sends something."""

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import AlertKind, Channel, Subscription

# Where `manage.py catch_webhooks --port 8025` listens (make demo starts it beside the worker).
DEMO_CHAT_URL = "http://127.0.0.1:8025/chat"


def ensure_subscriptions(users: dict) -> int:
    """The reviewer's email alerts and weekly digest, the admin's health alerts, Engineering's
    chat room; created once."""
    reviewer = users["reviewer"]
    wanted = [
        ({"user": reviewer, "kind": AlertKind.ASSIGNED}, {"channel": Channel.EMAIL}),
        ({"user": users["demo"], "kind": AlertKind.HEALTH}, {"channel": Channel.EMAIL}),
        (
            {"user": reviewer, "kind": AlertKind.WEEKLY_DIGEST},
            {"channel": Channel.EMAIL, "digest_weekday": 0, "digest_hour": 8},
        ),
    ]
    engineering = Team.objects.filter(name="Engineering").first()
    if engineering is not None:
        for kind in (AlertKind.ASSIGNED, AlertKind.SILENCE, AlertKind.HEALTH):
            wanted.append(
                (
                    {"team": engineering, "kind": kind},
                    {"channel": Channel.CHAT, "target": DEMO_CHAT_URL},
                )
            )
    created = 0
    for lookup, defaults in wanted:
        created += Subscription.objects.get_or_create(**lookup, defaults=defaults)[1]
    return created
