"""Recording canonical events: notifications and delivery events, idempotent and set-based.

One batch costs a fixed number of queries whatever its size: the notifications and events
it touches are read once, new rows are written with COPY (PostgreSQL) or executemany
(SQLite), and each touched notification is settled again from all of its events.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from notifwatch.deliveries.bulk import (
    allocate_ids,
    db_datetime,
    db_json,
    insert_rows,
    update_rows,
)
from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.deliveries.status import EventFacts, counts_as_failure, settle
from notifwatch.failures.reasons import Reason, classify_reason, reason_by_key
from notifwatch.ingest.canonical import CanonicalEvent

OUTCOME_TYPES = {"deferred", "bounced", "failed", "suppressed", "complained"}
# What a report means when the provider gave no code at all.
DEFAULT_CATEGORY = {"complained": "spam_complaint", "suppressed": "unsubscribed_suppressed"}
IDENTITY_FIELDS = ("channel", "purpose", "customer_id", "recipient", "provider")
SETTLED_FIELDS = (
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
)
EVENT_COLUMNS = (
    "id",
    "notification_id",
    "source_id",
    "raw_event_id",
    "item_index",
    "event_id",
    "event_type",
    "occurred_at",
    "received_at",
    "attempt",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "reason_key",
    "reason_category",
    "permanent",
    "duplicate_count",
    "payload",
)
# Columns of a settled event that settling and the notification's reason need.
EVENT_FACTS = (
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
)


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
    is_opt_out = reason is not None and reason.category == "unsubscribed_suppressed"
    if is_opt_out and event_type in ("failed", "bounced"):
        event_type = "suppressed"
    return event_type, reason


def record_events(source_id: int, pending: list[PendingEvent]) -> RecordResult:
    """Record a batch of canonical events of one source; safe to call again with the same batch."""
    if not pending:
        return RecordResult()
    now = timezone.now()
    with transaction.atomic():
        keys = {p.event.notification_key for p in pending}
        existing = dict(
            Notification.objects.select_for_update()
            .filter(source_id=source_id, notification_key__in=keys)
            .values_list("notification_key", "id")
        )
        stored = dict(
            DeliveryEvent.objects.filter(
                source_id=source_id, event_id__in={p.event.event_id for p in pending}
            ).values_list("event_id", "raw_event_id")
        )
        fresh: list[PendingEvent] = []
        fresh_ids: set[str] = set()
        repeats: dict[tuple[str, str], int] = defaultdict(int)
        for item in pending:
            event_id = item.event.event_id
            if event_id in fresh_ids or event_id in stored:
                # Reprocessing the very raw event that stored it is not a repeat delivery.
                if event_id in fresh_ids or stored[event_id] != item.raw_event_id:
                    repeats[(event_id, item.event.notification_key)] += 1
                continue
            fresh_ids.add(event_id)
            fresh.append(item)

        new_keys = sorted({p.event.notification_key for p in fresh} - set(existing))
        ids = dict(existing)
        ids.update(zip(new_keys, allocate_ids(Notification, len(new_keys)), strict=True))
        event_rows = event_rows_for(fresh, source_id, ids, now)
        identity = identity_from_batch(fresh, ids)

        # New notifications are written once, already settled from this batch's events.
        by_notification: dict[int, list[dict]] = defaultdict(list)
        for row in event_rows:
            by_notification[row["notification_id"]].append(row)
        new_ids = {ids[key] for key in new_keys}
        insert_rows(
            Notification,
            (
                "id",
                "source_id",
                "notification_key",
                "duplicate_events",
                "created_at",
                *SETTLED_FIELDS,
            ),
            [
                (
                    ids[key],
                    source_id,
                    key,
                    0,
                    now,
                    *settled_row(
                        blank_identity(), identity[ids[key]], by_notification[ids[key]], now
                    ),
                )
                for key in new_keys
            ],
        )
        insert_rows(
            DeliveryEvent,
            EVENT_COLUMNS,
            [tuple(db_value(row[c]) for c in EVENT_COLUMNS) for row in event_rows],
        )
        record_repeats(source_id, repeats, ids)
        resettle({ids[p.event.notification_key] for p in fresh} - new_ids, now, identity)
        add_refs(fresh, ids, new_ids)
    return RecordResult(new=len(fresh), duplicates=sum(repeats.values()))


def event_rows_for(fresh: list[PendingEvent], source_id: int, ids: dict, now) -> list[dict]:
    rows = []
    for item, pk in zip(fresh, allocate_ids(DeliveryEvent, len(fresh)), strict=True):
        event = item.event
        event_type, reason = explain(event)
        rows.append(
            {
                "id": pk,
                "notification_id": ids[event.notification_key],
                "source_id": source_id,
                "raw_event_id": item.raw_event_id,
                "item_index": item.item_index,
                "event_id": event.event_id,
                "event_type": event_type,
                "occurred_at": event.occurred_at,
                "received_at": now,
                "attempt": event.attempt,
                "provider": event.provider,
                "provider_message_id": event.provider_message_id,
                "error_code": event.error_code,
                "error_message": event.error_message,
                "reason_key": reason.key if reason else "",
                "reason_category": reason.category if reason else "",
                "permanent": reason.permanent if reason else None,
                "duplicate_count": 0,
                "payload": item.payload,
            }
        )
    return rows


def db_value(value):
    if isinstance(value, datetime):
        return db_datetime(value)
    if isinstance(value, (dict, list)):
        return db_json(value)
    return value


def record_repeats(source_id: int, repeats: dict[tuple[str, str], int], ids: dict) -> None:
    """Repeated events only bump counters, in SQL, never read-modify-write."""
    if not repeats:
        return
    update_counter(
        DeliveryEvent,
        "duplicate_count",
        "source_id = %s AND event_id = %s",
        [(count, source_id, event_id) for (event_id, _), count in repeats.items()],
    )
    per_notification: dict[int, int] = defaultdict(int)
    for (_, key), count in repeats.items():
        per_notification[ids[key]] += count
    update_counter(
        Notification,
        "duplicate_events",
        "id = %s",
        [(count, pk) for pk, count in per_notification.items()],
    )


def update_counter(model, column: str, where: str, rows: list[tuple]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.executemany(
            f'UPDATE "{model._meta.db_table}" SET "{column}" = "{column}" + %s WHERE {where}', rows
        )


def identity_from_batch(fresh: list[PendingEvent], ids: dict) -> dict[int, dict]:
    """Per notification, the first non-empty customer, recipient, ... in event time."""
    found: dict[int, dict] = defaultdict(dict)
    for item in sorted(fresh, key=lambda p: p.event.occurred_at):
        values = found[ids[item.event.notification_key]]
        for name in IDENTITY_FIELDS:
            value = getattr(item.event, name)
            if value and value != "other" and name not in values:
                values[name] = value
        for ref, value in item.event.refs.items():
            values.setdefault("refs", {}).setdefault(ref, value)
    return found


def blank_identity() -> dict:
    return {
        "channel": "other",
        "purpose": "",
        "customer_id": "",
        "recipient": "",
        "provider": "",
        "refs": {},
        "provider_message_id": "",
    }


def resettle(notification_ids: set[int], now: datetime, identity: dict[int, dict]) -> None:
    """Settle existing notifications again from all their events, old and new."""
    if not notification_ids:
        return
    events: dict[int, list[dict]] = defaultdict(list)
    for row in DeliveryEvent.objects.filter(notification_id__in=notification_ids).values(
        *EVENT_FACTS
    ):
        events[row["notification_id"]].append(row)
    current = Notification.objects.filter(pk__in=notification_ids).values(
        "id", *IDENTITY_FIELDS, "refs", "provider_message_id"
    )
    update_rows(
        Notification,
        SETTLED_FIELDS,
        [
            (
                *settled_row(known, identity.get(known["id"], {}), events[known["id"]], now),
                known["id"],
            )
            for known in current
        ],
    )


def settled_row(known: dict, found: dict, rows: list[dict], now: datetime) -> tuple:
    """The SETTLED_FIELDS values of a notification, from what is known and all its events."""
    values = dict(known)
    # Keep what is known; fill what is still empty (a later event may carry the customer).
    for name in IDENTITY_FIELDS:
        if found.get(name) and values.get(name) in ("", "other", None):
            values[name] = found[name]
    refs = {**found.get("refs", {}), **(values.get("refs") or {})}
    settlement = settle(
        EventFacts(
            order=r["id"],
            event_type=r["event_type"],
            occurred_at=r["occurred_at"],
            attempt=r["attempt"],
            provider_message_id=r["provider_message_id"],
            event_id=r["event_id"],
        )
        for r in rows
    )
    deciding = next(
        (r for r in rows if settlement.deciding and r["id"] == settlement.deciding.order), None
    )
    with_message = [r for r in rows if r["provider_message_id"]]
    latest = max(with_message, key=lambda r: (r["occurred_at"], r["id"])) if with_message else None
    explained = deciding if deciding and deciding["reason_key"] else None
    reason = reason_by_key(explained["reason_key"]) if explained else None
    fix_owner = reason.fix_owner if reason else ""
    return (
        values["channel"] or "other",
        values["purpose"] or "",
        values["customer_id"] or "",
        values["recipient"] or "",
        db_json(refs),
        (latest["provider"] if latest and latest["provider"] else values["provider"]) or "",
        latest["provider_message_id"] if latest else (values.get("provider_message_id") or ""),
        settlement.final_status,
        db_datetime(min(r["occurred_at"] for r in rows)),
        db_datetime(max(r["occurred_at"] for r in rows)),
        db_datetime(settlement.settled_at),
        settlement.attempts,
        len(rows),
        settlement.duplicate_sends,
        "" if values["customer_id"] else "missing_customer_id",
        explained["reason_key"] if explained else "",
        explained["reason_category"] if explained else "",
        explained["permanent"] if explained else None,
        fix_owner,
        counts_as_failure(settlement.final_status, fix_owner),
        explained["error_code"] if explained else "",
        explained["error_message"] if explained else "",
        db_datetime(now),
    )


def add_refs(fresh: list[PendingEvent], ids: dict, new_ids: set[int]) -> None:
    rows = {
        (ids[p.event.notification_key], name, value)
        for p in fresh
        for name, value in p.event.refs.items()
    }
    brand_new = [r for r in rows if r[0] in new_ids]
    insert_rows(
        NotificationRef,
        ("id", "notification_id", "name", "value"),
        [
            (pk, *row)
            for pk, row in zip(
                allocate_ids(NotificationRef, len(brand_new)), brand_new, strict=True
            )
        ],
    )
    # Notifications seen before may already have these refs: let the constraint decide.
    NotificationRef.objects.bulk_create(
        [
            NotificationRef(notification_id=n, name=name, value=value)
            for n, name, value in rows
            if n not in new_ids
        ],
        ignore_conflicts=True,
    )
