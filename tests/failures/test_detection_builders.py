"""Realistic data for the detection tests, fed through the real ingest (no test here).

Canonical events go in through `import_lines`, as an import file would; quarantined and
rejected calls through `store_raw`, as the webhook views do.
"""

import json
from datetime import datetime, timedelta
from itertools import count

from django.utils import timezone

from notifwatch.ingest.importer import import_lines
from notifwatch.ingest.models import Outcome, RawEvent, Transport
from notifwatch.ingest.processing import store_raw

_ids = count(1)


def event(
    key: str,
    status: str,
    at: datetime,
    *,
    purpose: str = "order_confirmation",
    channel: str = "email",
    customer_id: str | None = "C-1",
    recipient: str = "ann@example.com",
    **extra,
) -> dict:
    """One canonical event (DESIGN.md), as a sender's log or API batch would carry it."""
    values = {
        "event_id": f"ev-{next(_ids)}",
        "occurred_at": at.isoformat(),
        "notification_key": key,
        "channel": channel,
        "purpose": purpose,
        "status": status,
        "customer_id": customer_id,
        "recipient": recipient,
        "provider": "sendgrid",
        **extra,
    }
    return {k: v for k, v in values.items() if v is not None}


def bounce(key: str, at: datetime, customer_id: str, **extra) -> list[dict]:
    """A send and its hard bounce: the address does not exist."""
    address = f"{customer_id.lower()}@example.com"
    return [
        event(key, "sent", at, customer_id=customer_id, recipient=address, **extra),
        event(
            key,
            "bounced",
            at + timedelta(seconds=20),
            customer_id=customer_id,
            recipient=address,
            error_code="5.1.1",
            error_message="550 5.1.1 Recipient address rejected: no such user",
            **extra,
        ),
    ]


def import_events(source, events: list[dict], name: str = "events.jsonl"):
    lines = [(n, json.dumps(e).encode(), None) for n, e in enumerate(events, start=1)]
    return import_lines(source, lines, name)


def store_calls(source, count: int, *, outcome: str, reason: str = "", at: datetime | None = None):
    """Webhook calls as the views store them, optionally arrived at `at`."""
    raws = [
        store_raw(
            source,
            Transport.WEBHOOK,
            json.dumps({"n": next(_ids)}).encode(),
            outcome=outcome,
            reason=reason,
        )
        for _ in range(count)
    ]
    if at is not None:
        RawEvent.objects.filter(pk__in=[r.pk for r in raws]).update(received_at=at)
    return raws


def arrivals(source, hours: list[datetime], per_hour: int) -> None:
    """A history of parsed calls: `per_hour` in each of these hours."""
    rows = []
    for hour in hours:
        for n in range(per_hour):
            moment = hour + timedelta(minutes=(60 * n) // per_hour)
            rows.append(
                RawEvent(
                    source=source,
                    received_at=moment,
                    transport=Transport.WEBHOOK,
                    body=b"{}",
                    content_hash=f"h{next(_ids)}",
                    outcome=Outcome.PARSED,
                )
            )
    RawEvent.objects.bulk_create(rows)


def top_of_hour(moment: datetime | None = None) -> datetime:
    moment = moment or timezone.now()
    return moment.replace(minute=0, second=0, microsecond=0)


def arrive_as_logged(source) -> None:
    """Import lines arrived when their events happened, not when the test ran."""
    from django.db.models import OuterRef, Subquery

    from notifwatch.deliveries.models import DeliveryEvent

    logged = DeliveryEvent.objects.filter(raw_event_id=OuterRef("pk")).values("occurred_at")[:1]
    RawEvent.objects.filter(source=source, transport=Transport.IMPORT).update(
        received_at=Subquery(logged)
    )
