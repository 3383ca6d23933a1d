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
from notifwatch.failures.unknown_codes import count_unknown_codes
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
# Every column of a new notification, in the order its row is written.
NOTIFICATION_COLUMNS = (
    "id",
    "source_id",
    "notification_key",
    "duplicate_events",
    "created_at",
    "callback_only",
    *SETTLED_FIELDS,
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
REF_COLUMNS = ("id", "notification_id", "name", "value")
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


Target = tuple[int, str]  # (source id, notification key) of the notification an event joins


@dataclass
class PendingEvent:
    event: CanonicalEvent
    raw_event_id: int | None
    item_index: int = 0
    payload: dict | None = None
    # Provider callbacks join the send record (any source) that has their provider message id.
    join_by_message_id: bool = False
    target: Target | None = None


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
        resolve_targets(source_id, pending)
        existing = existing_notifications({p.target for p in pending})
        stored = {
            row[0]: (row[1], row[2], (row[3], row[4]))
            for row in DeliveryEvent.objects.filter(
                source_id=source_id, event_id__in={p.event.event_id for p in pending}
            ).values_list(
                "event_id",
                "raw_event_id",
                "notification_id",
                "notification__source_id",
                "notification__notification_key",
            )
        }
        fresh: list[PendingEvent] = []
        first_target: dict[str, Target] = {}
        repeats: dict[str, int] = defaultdict(int)
        # A repeat counts against the notification that holds the event: stored, or new here.
        repeat_of: dict[str, int | Target] = {}
        for item in pending:
            event_id = item.event.event_id
            if event_id in first_target:
                refuse_conflict(item, first_target[event_id])
                repeats[event_id] += 1
                repeat_of[event_id] = first_target[event_id]
                continue
            if event_id in stored:
                raw_event_id, notification_id, target = stored[event_id]
                refuse_conflict(item, target)
                # Reprocessing the very raw event that stored it is not a repeat delivery.
                if raw_event_id != item.raw_event_id:
                    repeats[event_id] += 1
                    repeat_of[event_id] = notification_id
                continue
            first_target[event_id] = item.target
            fresh.append(item)

        new_targets = sorted({p.target for p in fresh} - set(existing))
        ids: dict[Target, int] = dict(existing)
        ids.update(zip(new_targets, allocate_ids(Notification, len(new_targets)), strict=True))
        event_rows = event_rows_for(fresh, source_id, ids, now)
        identity = identity_from_batch(fresh, ids)
        # A notification first seen through a provider callback has no send record (yet).
        # (One pass over the batch: a scan per new notification was quadratic in batch size.)
        has_send_record = {p.target for p in fresh if not p.join_by_message_id}
        callback_only = set(new_targets) - has_send_record

        # New notifications are written once, already settled from this batch's events.
        by_notification: dict[int, list[dict]] = defaultdict(list)
        for row in event_rows:
            by_notification[row["notification_id"]].append(row)
        new_ids = {ids[target] for target in new_targets}
        insert_rows(
            Notification,
            NOTIFICATION_COLUMNS,
            [
                (
                    ids[target],
                    target[0],
                    target[1],
                    0,
                    now,
                    target in callback_only,
                    *settled_row(
                        {**blank_identity(), "callback_only": target in callback_only},
                        identity[ids[target]],
                        by_notification[ids[target]],
                        now,
                    ),
                )
                for target in new_targets
            ],
        )
        insert_rows(
            DeliveryEvent,
            EVENT_COLUMNS,
            [tuple(db_value(row[c]) for c in EVENT_COLUMNS) for row in event_rows],
        )
        record_repeats(
            source_id,
            repeats,
            {eid: ids[of] if isinstance(of, tuple) else of for eid, of in repeat_of.items()},
        )
        count_unknown_codes(
            (row["provider"], row["error_code"], row["error_message"], row["occurred_at"])
            for row in event_rows
            if row["unknown_code"]
        )
        adopted = adopt_callbacks(fresh, ids)
        resettle(({ids[p.target] for p in fresh} - new_ids) | adopted, now, identity)
        add_refs(fresh, ids, new_ids)
    return RecordResult(new=len(fresh), duplicates=sum(repeats.values()))


class EventConflict(ValueError):
    """One event id names two different notifications: bad input, never half-recorded."""

    def __init__(self, item: PendingEvent, message: str):
        super().__init__(message)
        self.item = item
        self.field = "event_id"
        self.message = message


def refuse_conflict(item: PendingEvent, target: Target) -> None:
    """An event id already used for another notification key is a sender's mistake.

    Provider callbacks are exempt: their notification is found by provider message id and may
    legitimately move (a callback adopted by its send record), and the provider names the id.
    """
    if item.join_by_message_id or item.target == target:
        return
    raise EventConflict(
        item,
        f"{item.event.event_id!r} was already used for notification_key {target[1]!r}, "
        f"not {item.event.notification_key!r}; an event id names one event of one notification",
    )


def resolve_targets(source_id: int, pending: list[PendingEvent]) -> None:
    """Which notification each event belongs to; callbacks find their send record."""
    for item in pending:
        item.target = (source_id, item.event.notification_key)
    joining = [p for p in pending if p.join_by_message_id and p.event.provider_message_id]
    if not joining:
        return
    message_ids = {p.event.provider_message_id for p in joining}
    candidates: dict[str, set[tuple]] = defaultdict(set)
    for row in Notification.objects.filter(provider_message_id__in=message_ids).values_list(
        "provider_message_id", "source_id", "notification_key", "recipient", "callback_only"
    ):
        candidates[row[0]].add(row[1:])
    for row in (
        DeliveryEvent.objects.filter(provider_message_id__in=message_ids)
        .values_list(
            "provider_message_id",
            "notification__source_id",
            "notification__notification_key",
            "notification__recipient",
            "notification__callback_only",
        )
        .distinct()
    ):
        candidates[row[0]].add(row[1:])
    named = {p.event.notification_key for p in joining} - message_ids
    by_key: dict[str, set[tuple]] = defaultdict(set)
    for row in Notification.objects.filter(notification_key__in=named).values_list(
        "notification_key", "source_id", "notification_key", "recipient", "callback_only"
    ):
        by_key[row[0]].add(row[1:])
    for item in joining:
        event = item.event
        found = candidates.get(event.provider_message_id) or by_key.get(event.notification_key)
        match = best_match(found or set(), event.recipient)
        if match:
            item.target = match
        elif event.notification_key == event.provider_message_id and event.recipient:
            # One provider message may go to several people: each has its own outcome.
            item.target = (source_id, f"{event.provider_message_id}:{event.recipient}"[:255])


def best_match(found: set[tuple], recipient: str) -> Target | None:
    """Prefer a send record over another callback, and the same recipient over any."""
    if not found:
        return None
    ranked = sorted(
        found,
        key=lambda row: (
            bool(recipient and row[2] and row[2] != recipient),
            row[3],
            row[0],
            row[1],
        ),
    )
    best = ranked[0]
    if recipient and best[2] and best[2] != recipient:
        return None
    return (best[0], best[1])


def existing_notifications(targets: set[Target]) -> dict[Target, int]:
    keys_by_source: dict[int, set[str]] = defaultdict(set)
    for source_id, key in targets:
        keys_by_source[source_id].add(key)
    found: dict[Target, int] = {}
    for source_id, keys in keys_by_source.items():
        rows = (
            Notification.objects.select_for_update()
            .filter(source_id=source_id, notification_key__in=keys)
            .values_list("notification_key", "id")
        )
        found.update({(source_id, key): pk for key, pk in rows})
    return found


def adopt_callbacks(fresh: list[PendingEvent], ids: dict[Target, int]) -> set[int]:
    """Callbacks that arrived before their send record move onto it once it shows up."""
    send_records = {
        (p.event.provider_message_id, p.event.recipient): ids[p.target]
        for p in fresh
        if not p.join_by_message_id and p.event.provider_message_id
    }
    if not send_records:
        return set()
    orphans = Notification.objects.filter(
        callback_only=True, provider_message_id__in={m for m, _ in send_records}
    ).values_list("id", "provider_message_id", "recipient")
    adopted: set[int] = set()
    for orphan_id, message_id, recipient in orphans:
        target = send_records.get((message_id, recipient)) or next(
            (
                pk
                for (m, r), pk in send_records.items()
                if m == message_id and not (r and recipient)
            ),
            None,
        )
        if target is None or target == orphan_id:
            continue
        DeliveryEvent.objects.filter(notification_id=orphan_id).update(notification_id=target)
        NotificationRef.objects.filter(notification_id=orphan_id).delete()
        Notification.objects.filter(pk=orphan_id).delete()
        adopted.add(target)
    return adopted


def event_rows_for(fresh: list[PendingEvent], source_id: int, ids: dict, now) -> list[dict]:
    rows = []
    for item, pk in zip(fresh, allocate_ids(DeliveryEvent, len(fresh)), strict=True):
        event = item.event
        event_type, reason = explain(event)
        rows.append(
            {
                "id": pk,
                "notification_id": ids[item.target],
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
                "unknown_code": reason is not None and not reason.known,
            }
        )
    return rows


def db_value(value):
    if isinstance(value, datetime):
        return db_datetime(value)
    if isinstance(value, (dict, list)):
        return db_json(value)
    return value


def record_repeats(source_id: int, repeats: dict[str, int], notification_of: dict) -> None:
    """Repeated events only bump counters, in SQL, never read-modify-write."""
    if not repeats:
        return
    update_counter(
        DeliveryEvent,
        "duplicate_count",
        "source_id = %s AND event_id = %s",
        [(count, source_id, event_id) for event_id, count in repeats.items()],
    )
    per_notification: dict[int, int] = defaultdict(int)
    for event_id, count in repeats.items():
        per_notification[notification_of[event_id]] += count
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
        values = found[ids[item.target]]
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
        "id", *IDENTITY_FIELDS, "refs", "provider_message_id", "callback_only"
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
        identity_problem(values),
        explained["reason_key"] if explained else "",
        explained["reason_category"] if explained else "",
        explained["permanent"] if explained else None,
        fix_owner,
        counts_as_failure(settlement.final_status, fix_owner),
        explained["error_code"] if explained else "",
        explained["error_message"] if explained else "",
        db_datetime(now),
    )


def identity_problem(values: dict) -> str:
    if values["customer_id"]:
        return ""
    # A callback with no send record behind it cannot be tied to a customer at all.
    return "unmatched_callback" if values.get("callback_only") else "missing_customer_id"


def add_refs(fresh: list[PendingEvent], ids: dict, new_ids: set[int]) -> None:
    rows = {(ids[p.target], name, value) for p in fresh for name, value in p.event.refs.items()}
    brand_new = [r for r in rows if r[0] in new_ids]
    insert_rows(
        NotificationRef,
        REF_COLUMNS,
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
