import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import Source, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw


def post(source: Source, *events: dict) -> None:
    """Canonical events through the real API path, as the sender would post them."""
    raw = process_raw_event(store_raw(source, Transport.API, json.dumps(list(events)).encode()))
    assert raw.outcome == "parsed", raw.reason


def event(key: str, status: str, at: datetime, **extra) -> dict:
    return {
        "event_id": f"{key}:{status}:{extra.get('provider_message_id', '')}:{at.isoformat()}",
        "occurred_at": at.isoformat(),
        "notification_key": key,
        "channel": "email",
        "purpose": "order_confirmation",
        "status": status,
        "attempt": 1,
        "customer_id": f"cus-{key}",
        "recipient": f"{key}@example.com",
        "refs": {"order_id": f"ORD-{key}"},
        "provider": "sendgrid",
        **extra,
    }


BOUNCE = {"error_code": "550", "error_message": "550 5.1.1 The email account does not exist"}


@pytest.fixture
def shop(db) -> Source:
    return save_source(slug="shop", kind="json", name="Shop").source


@pytest.fixture
def week(json_source, shop) -> datetime:
    """A week of traffic from two senders; returns the moment it was recorded.

    Billing sender, last 24 hours: 2 emails (1 delivered, 1 bounced) and 1 SMS delivered.
    Billing sender, earlier this week: 1 email sent twice (a duplicate send), 1 email without a
    customer id (delivered), 1 email from 10 days ago (outside the week).
    Shop, last 24 hours: 1 email unsubscribed (suppressed, not a failure), 1 still pending.
    Shop, earlier this week: 1 email delivered, 1 pending for 3 days.
    """
    now = timezone.now()
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731
    post(
        json_source,
        event("b1", "delivered", ago(hours=2)),
        event("b2", "bounced", ago(hours=3), **BOUNCE),
        event("b3", "delivered", ago(hours=20), channel="sms", recipient="+14155550100"),
        event("b4", "delivered", ago(days=2), provider_message_id="m-1"),
        event("b4", "delivered", ago(days=2, minutes=-1), provider_message_id="m-2"),
        event("b5", "delivered", ago(days=3), customer_id=""),
        event("b6", "delivered", ago(days=10)),
    )
    post(
        shop,
        event("s1", "suppressed", ago(hours=5), error_code="Unsubscribed Address"),
        event("s2", "sent", ago(hours=2)),
        event("s3", "delivered", ago(days=4)),
        event("s4", "sent", ago(days=3)),
    )
    return now
