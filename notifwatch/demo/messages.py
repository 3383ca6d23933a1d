"""Notifications of the senders that write canonical fields: billing and the support desk as
JSON events, the CRM as CSV rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifwatch.demo.formats import compact, iso
from notifwatch.demo.world import Customer


@dataclass
class Message:
    """One notification of a canonical-JSON source."""

    at: datetime
    purpose: str
    channel: str
    customer: Customer
    key: str
    refs: dict[str, str]
    provider: str = ""
    form: str = "ok"
    scenario: str = "ok"

    @property
    def customer_id(self) -> str:
        return self.customer.id if self.form == "ok" else ""


class EventIds:
    """A sender's event ids: its prefix and a running number."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:07d}"


def canonical(message: Message, event_id: str, ts: datetime, status: str, **extra) -> dict:
    """One event in the events API's canonical fields; empty fields are left out."""
    return compact(
        {
            "event_id": event_id,
            "occurred_at": iso(ts),
            "notification_key": message.key,
            "channel": message.channel,
            "purpose": message.purpose,
            "status": status,
            "customer_id": message.customer_id,
            "recipient": recipient_of(message),
            "refs": message.refs,
            "provider": message.provider,
            **extra,
        }
    )


def recipient_of(message: Message) -> str:
    if message.channel == "email":
        return message.customer.email_at(message.at)
    if message.channel == "sms":
        return message.customer.phone
    if message.channel == "in_app":
        return f"inbox:{message.customer.id}"
    if message.channel == "webhook":
        account = message.customer.id.removeprefix("cus_")
        return f"https://erp.{message.customer.company}.example/hooks/billing/{account}"
    return message.customer.phone
