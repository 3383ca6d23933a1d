"""Realistic exceptions for tests: events through the real ingest, problems as the rules see them."""

import json
from datetime import datetime

from notifwatch.deliveries.models import Notification
from notifwatch.failures.grouping import Problem, record_problems
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.ingest.models import Transport
from notifwatch.ingest.processing import process_raw_event, store_raw

BOUNCE_CODE = "550"
BOUNCE_MESSAGE = "550 5.1.1 The email account that you tried to reach does not exist"


def send(source, *events: dict) -> None:
    """Post canonical events to a JSON source the way its sender would (one API call)."""
    raw = process_raw_event(store_raw(source, Transport.API, json.dumps(list(events)).encode()))
    assert raw.outcome == "parsed", raw.reason


def event(
    key: str,
    status: str,
    at: str,
    customer: str,
    *,
    purpose: str = "order_confirmation",
    channel: str = "email",
    recipient: str = "",
    code: str = "",
    message: str = "",
    provider: str = "sendgrid",
) -> dict:
    return {
        "event_id": f"{key}:{status}:{at}",
        "occurred_at": at,
        "notification_key": key,
        "channel": channel,
        "purpose": purpose,
        "status": status,
        "attempt": 1,
        "customer_id": customer,
        "recipient": recipient or f"{customer}@example.com",
        "refs": {"order_id": f"ORD-{key}"},
        "provider": provider,
        "error_code": code,
        "error_message": message,
    }


def bounce(key: str, at: str, customer: str, **kwargs) -> dict:
    return event(key, "bounced", at, customer, code=BOUNCE_CODE, message=BOUNCE_MESSAGE, **kwargs)


def failure_problems(notifications) -> list[Problem]:
    """Failed notifications as the delivery-failure rule groups them: source, channel,
    purpose and reason category."""
    return [
        Problem(
            kind=Kind.DELIVERY_FAILURE,
            fingerprint=f"delivery_failure:{n.source_id}:{n.channel}:{n.purpose}:{n.reason_category}",
            title=f"{n.purpose.replace('_', ' ').capitalize()} {n.channel}: {n.reason_category}",
            occurred_at=n.settled_at or n.last_event_at,
            notification_id=n.pk,
            customer_id=n.customer_id,
            source_id=n.source_id,
            channel=n.channel,
            purpose=n.purpose,
            reason_category=n.reason_category,
            fix_owner=n.fix_owner,
            reason_key=n.reason_key,
        )
        for n in notifications
    ]


def record_failures(notifications, rule: str = "delivery failures") -> FailureGroup:
    """Record failed notifications that share one fingerprint; return their exception."""
    (group_id,) = record_problems(failure_problems(notifications), rule=rule)
    return FailureGroup.objects.get(pk=group_id)


def bounced_order_confirmations(source) -> FailureGroup:
    """Three customers' order confirmations bounced; one of them got it by SMS anyway."""
    send(
        source,
        bounce("ord-1:email", "2025-03-14T10:00:00Z", "cus_1"),
        bounce("ord-2:email", "2025-03-14T10:05:00Z", "cus_2"),
        bounce("ord-3:email", "2025-03-14T10:10:00Z", "cus_3"),
        event("ord-2:sms", "delivered", "2025-03-14T10:06:00Z", "cus_2", channel="sms"),
    )
    failed = Notification.objects.filter(source=source, counts_as_failure=True)
    return record_failures(failed)


def simple_problem(fingerprint: str, n: int, *, kind: str = Kind.SILENCE, **kwargs) -> Problem:
    """A problem that is neither a notification nor a raw event: one observed moment."""
    return Problem(
        kind=kind,
        fingerprint=fingerprint,
        title=kwargs.pop("title", f"Problem {fingerprint}"),
        occurred_at=kwargs.pop("occurred_at", datetime.fromisoformat(f"2025-03-14T{n:02d}:00:00Z")),
        subject=kwargs.pop("subject", f"{fingerprint}@{n}"),
        **kwargs,
    )
