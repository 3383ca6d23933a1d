"""Loading the plan through the real ingest code.

`load_plan(plan)` feeds the plan through the ingest code: `import_lines` for logs and CSV, and
`store_raw` + `process_raw_event` for every HTTP call, canonical or provider webhook (Twilio's
thousands of single callbacks are interpreted the same way, then recorded in batches). Provider
callbacks are interpreted by their source kind's adapter and join the shop sender's send records
by provider message id, as in production. It then back-dates arrival times (`received_at`) to
when each call or line would have arrived, so pages show a week, not a burst.

Re-loading the same plan adds nothing: import lines are unique by content, and every other call
whose body is already stored (as many times as the plan holds it) is skipped.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery

from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.deliveries.recording import record_events
from notifwatch.demo.plan import Plan
from notifwatch.demo.sources import SOURCES, ensure_sources
from notifwatch.demo.traffic import Call, LogFile
from notifwatch.ingest.importer import import_lines
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.parsing import BodyProblem
from notifwatch.ingest.processing import finish, interpret_raw, process_raw_event, store_raw


@dataclass
class LoadResult:
    new_raw_events: int = 0
    new_notifications: int = 0
    new_delivery_events: int = 0


def reset_demo_data() -> None:
    """Delete every notification, raw event and source (audit entries stay: they are append-only)."""
    with transaction.atomic():
        DeliveryEvent.objects.all().delete()
        NotificationRef.objects.all().delete()
        Notification.objects.all().delete()
        RawEvent.objects.all().delete()
        Source.objects.all().delete()


def load_plan(plan: Plan) -> LoadResult:
    before = (RawEvent.objects.count(), Notification.objects.count(), DeliveryEvent.objects.count())
    sources = ensure_sources()
    for spec in SOURCES:
        source = sources[spec.slug]
        with transaction.atomic():
            for log_file in (f for f in plan.files if f.slug == spec.slug):
                import_lines(source, iter(log_file.lines), log_file.name)
                backdate_import(source, log_file)
            calls = sorted((c for c in plan.calls if c.slug == spec.slug), key=lambda c: c.arrived)
            post_calls(source, calls)
            backdate_events(source)
    after = (RawEvent.objects.count(), Notification.objects.count(), DeliveryEvent.objects.count())
    return LoadResult(*(a - b for a, b in zip(after, before, strict=True)))


def unseen(source: Source, calls: list[Call]) -> list[Call]:
    """Calls whose body is not stored yet, counting repeats: a body posted twice is kept twice."""
    stored = Counter(
        RawEvent.objects.filter(source=source)
        .exclude(transport=Transport.IMPORT)
        .values_list("content_hash", flat=True)
    )
    fresh = []
    for call in calls:
        digest = hashlib.sha256(call.body).hexdigest()
        if stored[digest] > 0:
            stored[digest] -= 1
        else:
            fresh.append(call)
    return fresh


# Twilio posts one callback per status change of each message: thousands of calls in a demo
# week. process_raw_event records each on its own, for a fixed ~4 ms of queries, which alone
# would take the full demo past 40 s; these are interpreted one by one just the same, and their
# events recorded together (see process_callbacks).
BATCHED_KINDS = frozenset({"twilio"})
CALLBACK_BATCH = 200


def post_calls(source: Source, calls: list[Call]) -> None:
    """Each HTTP call stored with store_raw, then processed as the API and webhook views do:
    canonical batches by the source's mapping, provider webhooks by the source kind's adapter
    (which joins callbacks to the send records that logged the same provider message id).

    Authentication is the views' job and is skipped here: the plan already knows which calls a
    view would refuse (a Twilio signature made with a rotated token); those are stored as
    rejected and never interpreted, as the view does. Good for seeding, not for real traffic.
    """
    stored: list[tuple[RawEvent, datetime]] = []
    waiting: list[RawEvent] = []
    for call in unseen(source, calls):
        raw = store_raw(
            source,
            call.transport,
            call.body,
            content_type=call.content_type,
            headers=call.headers,
            outcome=Outcome.REJECTED if call.rejected else Outcome.RECEIVED,
            reason=call.rejected,
        )
        stored.append((raw, call.arrived))
        if call.rejected:
            continue
        # Adapters read the arrival time (a Twilio callback has no time of its own): give them
        # the back-dated one, which set_arrivals then stores.
        raw.received_at = call.arrived
        if source.kind in BATCHED_KINDS:
            waiting.append(raw)
            if len(waiting) >= CALLBACK_BATCH:
                process_callbacks(source, waiting)
                waiting = []
        else:
            process_raw_event(raw)
    if waiting:
        process_callbacks(source, waiting)
    # process_raw_event and process_callbacks set outcome and event_count on the raw events.
    set_arrivals([(raw.pk, at, raw.outcome, raw.event_count) for raw, at in stored])


def process_callbacks(source: Source, raws: list[RawEvent]) -> None:
    """process_raw_event for a run of raw events, with their events recorded in one batch.

    Each raw event is interpreted on its own by its source kind's adapter (interpret_raw, as
    process_raw_event does), and gets the outcome process_raw_event would give it: quarantined
    (by process_raw_event itself), parsed, duplicate (every event already recorded) or ignored.
    record_events joins the callbacks to their send records by provider message id either way.
    Outcomes and counts of parsed and duplicate ones are written by post_calls' set_arrivals.
    """
    found = []
    for raw in raws:
        try:
            interpretation = interpret_raw(raw)
        except BodyProblem:
            interpretation = None
        if interpretation is None or interpretation.problems:
            process_raw_event(raw)  # quarantines it, with process_raw_event's own reason
            continue
        found.append((raw, interpretation))
    record_events(source.pk, [p for _, interpretation in found for p in interpretation.pending])
    new = dict(
        DeliveryEvent.objects.filter(raw_event_id__in=[raw.pk for raw, _ in found])
        .values("raw_event_id")
        .annotate(n=Count("id"))
        .values_list("raw_event_id", "n")
    )
    for raw, interpretation in found:
        if interpretation.pending:
            raw.event_count = new.get(raw.pk, 0)
            raw.outcome = Outcome.PARSED if raw.event_count else Outcome.DUPLICATE
        else:
            reason = "; ".join(sorted(set(interpretation.ignored)))[:500]
            finish(raw, Outcome.IGNORED, reason=reason)


def set_arrivals(rows: list[tuple[int, datetime, str, int]]) -> None:
    """(id, arrived, outcome, event_count) per raw event, in one statement run many times:
    bulk_update builds a CASE per row and is far slower at demo sizes."""
    if not rows:
        return
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {quote(RawEvent._meta.db_table)} SET {quote('received_at')} = %s, "
        f"{quote('processed_at')} = %s, {quote('outcome')} = %s, {quote('event_count')} = %s "
        f"WHERE {quote('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            sql, [(adapt(at), adapt(at), outcome, count, pk) for pk, at, outcome, count in rows]
        )


def backdate_import(source: Source, log_file: LogFile) -> None:
    """Import lines arrived when the shipper sent them, not when this command ran."""
    rows = RawEvent.objects.filter(
        source=source, transport=Transport.IMPORT, import_name=log_file.name
    ).values_list("id", "line_number", "received_at", "outcome", "event_count")
    changed = []
    for pk, line_number, received_at, outcome, count in rows:
        when = log_file.arrivals.get(line_number) or log_file.default_arrival
        if when and received_at != when:
            changed.append((pk, when, outcome, count))
    set_arrivals(changed)


def backdate_events(source: Source) -> None:
    """Delivery events were received with their raw event; notifications began with their first."""
    arrival = RawEvent.objects.filter(pk=OuterRef("raw_event_id")).values("received_at")[:1]
    DeliveryEvent.objects.filter(source=source, raw_event__isnull=False).update(
        received_at=Subquery(arrival)
    )
    Notification.objects.filter(source=source, first_event_at__isnull=False).exclude(
        created_at=F("first_event_at")
    ).update(created_at=F("first_event_at"))
