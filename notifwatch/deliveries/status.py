"""Final status of a notification from its delivery events.

The rules, applied to the events in the order they happened (not the order they arrived):
a complaint always wins; a bounce wins over anything but a complaint (a late bounce after a
delivery report is believed); a failure or suppression never undoes a delivery; an open or a
click means delivered when nothing final came; a deferral only moves a notification still pending
or deferred; a send, retry or deferral of a higher attempt number reopens a failed one. Sends
alone leave it pending.
Distinct provider messages delivered under one key are duplicate sends.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

FINAL = {"delivered", "bounced", "failed", "suppressed", "complained"}
FAILURES = {"bounced", "failed", "suppressed"}
ENGAGEMENT = {"opened", "clicked"}
SENDS = {"queued", "sent"}


@dataclass
class EventFacts:
    """What settling needs to know of one delivery event."""

    order: int  # arrival order, breaks ties between events with the same timestamp
    event_type: str
    occurred_at: datetime
    attempt: int | None = None
    provider_message_id: str = ""
    event_id: str = ""


@dataclass
class Settlement:
    final_status: str
    deciding: EventFacts | None
    settled_at: datetime | None
    attempts: int
    duplicate_sends: int


def settle(events: Iterable[EventFacts]) -> Settlement:
    """Walk the events in the order they happened, not the order they arrived."""
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.order))
    status: str | None = None
    deciding: EventFacts | None = None
    for event in ordered:
        if takes_over(event, status, deciding):
            status = "delivered" if event.event_type in ENGAGEMENT else event.event_type
            status = "pending" if status in SENDS else status
            deciding = event
    final_status = status or "pending"
    return Settlement(
        final_status=final_status,
        deciding=deciding,
        settled_at=deciding.occurred_at if deciding and final_status in FINAL else None,
        attempts=count_attempts(ordered),
        duplicate_sends=count_duplicate_sends(ordered),
    )


def takes_over(event: EventFacts, status: str | None, deciding: EventFacts | None) -> bool:
    kind = event.event_type
    # A retry (higher attempt number) reopens a failed or deferred notification.
    newer_attempt = (event.attempt or 0) > ((deciding.attempt or 0) if deciding else 0)
    if kind == "complained":
        return True
    if kind == "bounced":
        return status != "complained"
    if kind in ("failed", "suppressed"):
        # A failure report never undoes a delivery the customer already has.
        return status not in ("delivered", "complained")
    if kind == "delivered":
        return status != "complained"
    if kind in ENGAGEMENT:
        return status in (None, "pending", "deferred")
    if kind == "deferred":
        return status in (None, "pending", "deferred") or (status in FAILURES and newer_attempt)
    if kind in SENDS:
        return status is None or (status in FAILURES | {"deferred"} and newer_attempt)
    return False


def count_attempts(events: list[EventFacts]) -> int:
    numbered = max((e.attempt or 0 for e in events), default=0)
    outcomes = sum(1 for e in events if e.event_type == "deferred") + (
        1 if any(e.event_type in FINAL for e in events) else 0
    )
    return max(numbered, outcomes, 1 if events else 0)


def count_duplicate_sends(events: list[EventFacts]) -> int:
    """Extra deliveries: distinct provider messages delivered beyond the first."""
    delivered = [e for e in events if e.event_type == "delivered"]
    message_ids = {e.provider_message_id for e in delivered if e.provider_message_id}
    if message_ids:
        return len(message_ids) - 1
    return max(len({e.event_id for e in delivered}) - 1, 0)


def counts_as_failure(final_status: str, fix_owner: str) -> bool:
    """The customer did not get it, and it was not their own choice."""
    if final_status in ("bounced", "failed", "suppressed"):
        return fix_owner != "recipient_choice"
    return False
