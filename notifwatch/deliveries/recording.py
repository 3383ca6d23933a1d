"""Recording canonical events: notifications and delivery events, idempotent and set-based."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.deliveries.status import EventFacts, counts_as_failure, settle
from notifwatch.failures.reasons import Reason, classify_reason, reason_by_key
from notifwatch.ingest.canonical import CanonicalEvent

OUTCOME_TYPES = {"deferred", "bounced", "failed", "suppressed", "complained"}
# What a report says when the provider gave no code at all.
DEFAULT_CATEGORY = {"complained": "spam_complaint", "suppressed": "unsubscribed_suppressed"}
DEFAULT_FIX_OWNER = {
    "spam_complaint": "recipient_choice",
    "unsubscribed_suppressed": "recipient_choice",
}

SETTLED_FIELDS = [
    "channel",
    "purpose",
    "customer_id",
    "recipient",
    "refs",
    "provider",
    "provider_message_id",
    "final_status",
    "first_event_at",
    "last_event_at",
    "settled_at",
    "attempts",
    "event_count",
    "duplicate_sends",
    "identity_problem",
    "reason_key",
    "reason_category",
    "permanent",
    "fix_owner",
    "counts_as_failure",
    "error_code",
    "error_message",
    "updated_at",
]


@dataclass
class PendingEvent:
    event: CanonicalEvent
    raw_event_id: int | None
    item_index: int = 0
    payload: dict | None = None


@dataclass
class RecordResult:
    new: int = 0
    duplicates: int = 0


def explain(event: CanonicalEvent) -> tuple[str, Reason | None]:
    """The event type after reading its reason, and the reason itself."""
    if event.status not in OUTCOME_TYPES:
        return event.status, None
    reason = classify_reason(event.provider, event.error_code, event.error_message)
    if reason is None and event.status in DEFAULT_CATEGORY:
        reason = reason_by_key(f"category:{DEFAULT_CATEGORY[event.status]}")
    event_type = event.status
    # An opt-out reported as a failure is the recipient's choice: it is a suppression.
    if (
        reason
        and reason.category == "unsubscribed_suppressed"
        and event_type in ("failed", "bounced")
    ):
        event_type = "suppressed"
    return event_type, reason


def record_events(source_id: int, pending: list[PendingEvent]) -> RecordResult:
    """Record a batch of canonical events of one source; safe to call again with the same batch."""
    if not pending:
        return RecordResult()
    now = timezone.now()
    with transaction.atomic():
        notifications = notifications_for(source_id, pending, now)
        # Repeats of events already stored (or repeated within this batch) only bump a counter.
        stored = dict(
            DeliveryEvent.objects.filter(
                source_id=source_id, event_id__in={p.event.event_id for p in pending}
            ).values_list("event_id", "raw_event_id")
        )
        fresh: dict[str, DeliveryEvent] = {}
        repeats: dict[tuple[str, str], int] = defaultdict(int)
        for item in pending:
            event = item.event
            if event.event_id in fresh or event.event_id in stored:
                # Reprocessing the very raw event that stored it is not a repeat delivery.
                if event.event_id in fresh or stored[event.event_id] != item.raw_event_id:
                    repeats[(event.event_id, event.notification_key)] += 1
                continue
            fresh[event.event_id] = delivery_event(
                item, source_id, notifications[event.notification_key].pk, now
            )
        DeliveryEvent.objects.bulk_create(fresh.values(), batch_size=1000)
        for (event_id, key), count in repeats.items():
            DeliveryEvent.objects.filter(source_id=source_id, event_id=event_id).update(
                duplicate_count=F("duplicate_count") + count
            )
            Notification.objects.filter(pk=notifications[key].pk).update(
                duplicate_events=F("duplicate_events") + count
            )
        touched = {e.notification_id for e in fresh.values()}
        resettle(touched, now, identity_from_batch(pending, notifications))
        add_refs(notifications, pending)
    return RecordResult(new=len(fresh), duplicates=sum(repeats.values()))


def delivery_event(
    item: PendingEvent, source_id: int, notification_id: int, now: datetime
) -> DeliveryEvent:
    event = item.event
    event_type, reason = explain(event)
    return DeliveryEvent(
        notification_id=notification_id,
        source_id=source_id,
        raw_event_id=item.raw_event_id,
        item_index=item.item_index,
        event_id=event.event_id,
        event_type=event_type,
        occurred_at=event.occurred_at,
        received_at=now,
        attempt=event.attempt,
        provider=event.provider,
        provider_message_id=event.provider_message_id,
        error_code=event.error_code,
        error_message=event.error_message,
        reason_key=reason.key if reason else "",
        reason_category=reason.category if reason else "",
        permanent=reason.permanent if reason else None,
        payload=item.payload,
    )


IDENTITY_FIELDS = ("channel", "purpose", "customer_id", "recipient", "provider")


def identity_from_batch(pending: list[PendingEvent], notifications: dict) -> dict[int, dict]:
    """Per notification, the first non-empty customer, recipient, ... in event time."""
    found: dict[int, dict] = defaultdict(dict)
    for item in sorted(pending, key=lambda p: p.event.occurred_at):
        values = found[notifications[item.event.notification_key].pk]
        for name in IDENTITY_FIELDS:
            value = getattr(item.event, name)
            if value and value != "other" and name not in values:
                values[name] = value
        for ref, value in item.event.refs.items():
            values.setdefault("refs", {}).setdefault(ref, value)
    return found


def notifications_for(source_id: int, pending: list[PendingEvent], now: datetime) -> dict:
    """Get or create the notification of every key in the batch, locked for this transaction."""
    keys = {p.event.notification_key for p in pending}
    existing = set(
        Notification.objects.filter(source_id=source_id, notification_key__in=keys).values_list(
            "notification_key", flat=True
        )
    )
    first_seen: dict[str, CanonicalEvent] = {}
    for item in pending:
        first_seen.setdefault(item.event.notification_key, item.event)
    # ignore_conflicts: another worker may create the same key concurrently; the
    # unique constraint makes sure one row wins and both then use it.
    Notification.objects.bulk_create(
        [
            Notification(
                source_id=source_id,
                notification_key=key,
                channel=event.channel,
                purpose=event.purpose,
                created_at=now,
                updated_at=now,
            )
            for key, event in first_seen.items()
            if key not in existing
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    rows = Notification.objects.select_for_update().filter(
        source_id=source_id, notification_key__in=keys
    )
    return {n.notification_key: n for n in rows.only("id", "notification_key")}


def resettle(notification_ids: set[int], now: datetime, identity: dict[int, dict]) -> None:
    """Recompute the settled fields of these notifications from all their events."""
    if not notification_ids:
        return
    by_notification: dict[int, list[dict]] = defaultdict(list)
    for row in DeliveryEvent.objects.filter(notification_id__in=notification_ids).values(
        "id",
        "notification_id",
        "event_id",
        "event_type",
        "occurred_at",
        "attempt",
        "provider",
        "provider_message_id",
        "error_code",
        "error_message",
        "reason_key",
        "reason_category",
        "permanent",
    ):
        by_notification[row["notification_id"]].append(row)
    updates = []
    for notification in Notification.objects.filter(pk__in=notification_ids):
        fill_identity(notification, identity.get(notification.pk, {}))
        apply_settlement(notification, by_notification[notification.pk])
        notification.updated_at = now
        updates.append(notification)
    Notification.objects.bulk_update(updates, SETTLED_FIELDS, batch_size=500)


def fill_identity(notification: Notification, values: dict) -> None:
    """Keep what is known; fill what is still empty (a later event may carry the customer)."""
    for name in IDENTITY_FIELDS:
        if values.get(name) and getattr(notification, name) in ("", "other"):
            setattr(notification, name, values[name])
    if values.get("refs"):
        notification.refs = {**values["refs"], **notification.refs}
    notification.identity_problem = "" if notification.customer_id else "missing_customer_id"


def apply_settlement(notification: Notification, rows: list[dict]) -> None:
    facts = {
        row["id"]: EventFacts(
            order=row["id"],
            event_type=row["event_type"],
            occurred_at=row["occurred_at"],
            attempt=row["attempt"],
            provider_message_id=row["provider_message_id"],
            event_id=row["event_id"],
        )
        for row in rows
    }
    settlement = settle(facts.values())
    by_id = {row["id"]: row for row in rows}
    deciding = by_id[settlement.deciding.order] if settlement.deciding else None
    notification.final_status = settlement.final_status
    notification.settled_at = settlement.settled_at
    notification.attempts = settlement.attempts
    notification.duplicate_sends = settlement.duplicate_sends
    notification.event_count = len(rows)
    notification.first_event_at = min(r["occurred_at"] for r in rows)
    notification.last_event_at = max(r["occurred_at"] for r in rows)
    latest_with_message = [r for r in rows if r["provider_message_id"]]
    if latest_with_message:
        latest = max(latest_with_message, key=lambda r: (r["occurred_at"], r["id"]))
        notification.provider_message_id = latest["provider_message_id"]
        notification.provider = latest["provider"] or notification.provider
    explained = deciding if deciding and deciding["reason_key"] else None
    reason = reason_by_key(explained["reason_key"]) if explained else None
    notification.reason_key = explained["reason_key"] if explained else ""
    notification.reason_category = explained["reason_category"] if explained else ""
    notification.permanent = explained["permanent"] if explained else None
    notification.fix_owner = (
        reason.fix_owner if reason else DEFAULT_FIX_OWNER.get(notification.reason_category, "")
    )
    notification.error_code = explained["error_code"] if explained else ""
    notification.error_message = explained["error_message"] if explained else ""
    notification.counts_as_failure = counts_as_failure(
        settlement.final_status, notification.fix_owner
    )


def add_refs(notifications: dict, pending: list[PendingEvent]) -> None:
    rows = {
        (notifications[p.event.notification_key].pk, name, value)
        for p in pending
        for name, value in p.event.refs.items()
    }
    NotificationRef.objects.bulk_create(
        [NotificationRef(notification_id=n, name=name, value=value) for n, name, value in rows],
        batch_size=1000,
        ignore_conflicts=True,
    )
