"""Valid events in each sender's own format, distinct by number: the material of every check.

Each builder gives one event that the app records as exactly one delivery event, so a check
knows how many it should find. Event times are recent (within the last day before `now`).
"""

import json
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from bench.reliability.client import MAILGUN_SIGNATURE

STATUSES = ("queued", "sent", "delivered", "bounced", "failed", "deferred")
PURPOSES = ("order_confirmation", "password_reset", "invoice_available", "ticket_reply")


def moment(number: int, now: datetime | None = None) -> datetime:
    """A distinct, recent time for event `number` (one per second, wrapping after a day)."""
    now = now or datetime.now(UTC)
    return now - timedelta(seconds=60 + number % 86_000)


def canonical_event(prefix: str, number: int, rng: random.Random | None = None) -> dict:
    """One canonical event; two consecutive numbers share a notification (sent, then an outcome)."""
    rng = rng or random.Random(number)
    notification = number // 2
    channel = "sms" if notification % 5 == 0 else "email"
    recipient = (
        f"+1415555{notification % 10000:04d}"
        if channel == "sms"
        else f"customer{notification}@example.com"
    )
    status = "sent" if number % 2 == 0 else rng.choice(STATUSES[2:])
    return {
        "event_id": f"{prefix}-e{number}",
        "occurred_at": moment(number).isoformat().replace("+00:00", "Z"),
        "notification_key": f"{prefix}-n{notification}:{channel}",
        "channel": channel,
        "purpose": PURPOSES[notification % len(PURPOSES)],
        "status": status,
        "attempt": 1,
        "customer_id": f"C-{notification % 997}",
        "recipient": recipient,
        "refs": {"order_id": f"ORD-{notification}"},
        "error_code": "550 5.1.1" if status == "bounced" else "",
        "error_message": "mailbox unavailable" if status == "bounced" else "",
    }


def sendgrid_event(prefix: str, number: int) -> dict:
    return {
        "email": f"sg{number}@example.com",
        "timestamp": int(moment(number).timestamp()),
        "smtp-id": f"<{prefix}-sg{number}@example>",
        "event": "delivered" if number % 3 else "deferred",
        "category": ["transactional"],
        "sg_event_id": f"{prefix}-sge{number}",
        "sg_message_id": f"{prefix}-sgm{number}.filter0001",
        "response": "250 2.0.0 OK",
        "attempt": "1",
        "customer_id": f"C-{number % 997}",
        "order_id": f"ORD-{number}",
        "template": "order_shipped",
    }


def postmark_event(prefix: str, number: int) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 4412078,
        "MessageStream": "outbound",
        "MessageID": f"{prefix}-pm{number}",
        "Recipient": f"pm{number}@example.org",
        "Tag": "ticket_reply",
        "DeliveredAt": moment(number).isoformat().replace("+00:00", "Z"),
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": {"customer_id": f"C-{number % 997}", "ticket_id": f"TCK-{number}"},
    }


def mailgun_event_data(prefix: str, number: int) -> dict:
    return {
        "id": f"{prefix}-mg{number}",
        "timestamp": moment(number).timestamp(),
        "log-level": "info",
        "event": "delivered",
        "recipient": f"mg{number}@example.net",
        "tags": ["order_confirmation"],
        "user-variables": {"customer_id": f"C-{number % 997}", "order_id": f"ORD-{number}"},
        "message": {"headers": {"message-id": f"{prefix}-mgm{number}@mg.example"}},
        "delivery-status": {"attempt-no": 1, "code": 250, "message": "OK", "description": ""},
    }


def mailgun_body(event_data: object) -> bytes:
    """A Mailgun webhook body; its signature block is filled in when it is sent."""
    body = json.dumps({"signature": "__MAILGUN_SIGNATURE__", "event-data": event_data}).encode()
    assert MAILGUN_SIGNATURE in body
    return body


TWILIO_STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")


def twilio_params(prefix: str, number: int) -> list[tuple[str, str]]:
    """One status callback; its MessageSid and status make it distinct (Twilio's event id)."""
    sid = f"SM{prefix}{number // len(TWILIO_STATUSES):08d}"[:34]
    status = TWILIO_STATUSES[number % len(TWILIO_STATUSES)]
    params = [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", f"+1202555{number % 10000:04d}"),
        ("MessageSid", sid),
        ("AccountSid", "AC6eede0a1c20800a68674b1dc0f10d74d"),
        ("From", "+12025550100"),
        ("ApiVersion", "2010-04-01"),
    ]
    if status == "undelivered":
        params.append(("ErrorCode", "30003"))
    return params


def twilio_body(params: list[tuple[str, str]]) -> bytes:
    return urlencode(params).encode()


def json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
