"""Detection benchmark: a full `run_checks` pass next to a plain scan of the same table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/detection_bench.py
    .venv/bin/python bench/detection_bench.py --notifications 50000      # SQLite (temp file)

It creates its own scratch database (nw_detect_bench on PostgreSQL, a temp file on SQLite), seeds
it with COPY (a week of traffic from three senders and a provider, with every kind of problem in
realistic shares), then times in one run: a plain scan of the notifications table, the first
pass (which creates the exceptions), a second pass (what every later tick costs when nothing
changed) and each rule of a third pass. Figures are ratios within one run: these machines drift.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import copy_rows, scratch_database, setup_django  # noqa: E402

SCRATCH = "nw_detect_bench"

# (source slug, purpose, channel, provider, share of that source's notifications)
SENDERS = {
    "shop-sender": [
        ("order_confirmation", "email", "postmark", 40),
        ("order_shipped", "email", "postmark", 30),
        ("password_reset", "email", "sendgrid", 15),
        ("login_code", "sms", "twilio", 15),
    ],
    "billing-api": [
        ("invoice_available", "email", "sendgrid", 60),
        ("payment_receipt", "email", "sendgrid", 40),
    ],
    "crm-csv": [
        ("renewal_reminder", "email", "sendgrid", 70),
        ("spring_sale_campaign", "email", "sendgrid", 30),
    ],
}
SENDER_SHARE = {"shop-sender": 60, "billing-api": 25, "crm-csv": 15}
# Failures as providers report them: (error code, message) per provider family.
FAILURES = [
    ("5.1.1", "550 5.1.1 Recipient address rejected: no such user"),
    ("5.2.2", "552 5.2.2 Mailbox full"),
    ("5.7.1", "550 5.7.1 Message rejected as spam"),
]
CUSTOMERS = 200_000
DAYS = 8


class Table:
    """Rows for one table, by column name, written as ingest writes them (copy_rows)."""

    def __init__(self, model, columns: tuple[str, ...]):
        self.model = model
        self.columns = columns
        self.rows: list[tuple] = []

    def add(self, **values) -> None:
        # A column the bench does not fill is a KeyError here, not a row shifted by one.
        self.rows.append(tuple(values[column] for column in self.columns))

    def write(self) -> None:
        copy_rows(self.model, self.columns, self.rows)
        self.rows = []


def seed(count: int, now: datetime) -> dict[str, int]:
    """A week of notifications with every kind of problem in it, by COPY."""
    from notifwatch.deliveries.models import DeliveryEvent, Notification
    from notifwatch.deliveries.recording import EVENT_COLUMNS, NOTIFICATION_COLUMNS
    from notifwatch.failures.reasons import classify_reason
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.importer import RAW_COLUMNS
    from notifwatch.ingest.models import RawEvent

    sources = {
        slug: save_source(slug=slug, kind="json").source.pk
        for slug in ("shop-sender", "billing-api", "crm-csv")
    }
    sources["postmark"] = save_source(slug="postmark", kind="postmark", secret="u:p").source.pk
    sources["twilio"] = save_source(slug="twilio", kind="twilio", secret="tok").source.pk
    reasons = [classify_reason("sendgrid", code, text) for code, text in FAILURES]

    # The columns ingest itself writes these tables with.
    notifications = Table(Notification, NOTIFICATION_COLUMNS)
    events = Table(DeliveryEvent, EVENT_COLUMNS)
    raws = Table(RawEvent, RAW_COLUMNS)
    plan = [
        (slug, p)
        for slug, share in SENDER_SHARE.items()
        for p in SENDERS[slug]
        for _ in range(share * p[3])
    ]
    start = now - timedelta(days=DAYS - 0.5)
    step = (now - timedelta(minutes=5) - start) / count
    # The provider stops reporting 30 hours before the end; a mapping breaks 4 hours before.
    provider_silent = now - timedelta(hours=30)
    mapping_broken = now - timedelta(hours=4)
    event_id = raw_id = 0
    stats = dict.fromkeys(("failures", "late", "dup_same_key", "dup_pairs", "no_customer"), 0)

    def raw(source: str, at: datetime, outcome: str = "parsed", reason: str = "", problems=None):
        nonlocal raw_id
        raw_id += 1
        raws.add(
            id=raw_id,
            source_id=sources[source],
            received_at=at,
            transport="webhook",
            content_type="application/json",
            headers="{}",
            body=b"{}",
            content_hash=f"{raw_id:064x}",
            import_name="",
            line_number=None,
            outcome=outcome,
            problems=json.dumps(problems or []),
            reason=reason,
            event_count=0 if outcome != "parsed" else 1,
            processed_at=None,
        )
        return raw_id

    def add_event(pk, source, raw_event, kind, at, attempt, provider, message_id, reason=None):
        nonlocal event_id
        event_id += 1
        events.add(
            id=event_id,
            notification_id=pk,
            source_id=sources[source],
            raw_event_id=raw_event,
            item_index=0,
            event_id=f"e{event_id}",
            event_type=kind,
            occurred_at=at,
            received_at=at,
            attempt=attempt,
            provider=provider,
            provider_message_id=message_id,
            error_code="5.1.1" if reason else "",
            error_message="",
            reason_key=reason.key if reason else "",
            reason_category=reason.category if reason else "",
            permanent=reason.permanent if reason else None,
            duplicate_count=0,
            payload=None,
        )

    previous = None
    for n in range(1, count + 1):
        # A stride coprime with the plan's length interleaves the senders and purposes.
        slug, (purpose, channel, provider, _) = plan[(n * 7919) % len(plan)]
        at = start + step * n
        customer = n % CUSTOMERS
        customer_id = f"cus_{customer}"
        recipient = (
            f"+1415{customer:07d}" if channel == "sms" else f"customer{customer}@example.com"
        )
        if n % 2000 == 0:
            # A household sharing one address under two customer ids.
            recipient = f"customer{(customer + 1) % CUSTOMERS}@example.com"
        refs = {"order_id": f"O-{n}"}
        key = f"{slug}-{n}:{purpose}:{channel}"
        status, reason, dup_sends, identity = "delivered", None, 0, ""
        roll = n % 1000
        if roll < 30:
            status, reason = ("bounced", reasons[n % 3])
        elif roll < 40:
            status = "pending"
        elif roll < 43:
            status = "deferred"
        elif roll == 43:
            dup_sends = 1
        elif roll < 49:
            customer_id, identity = "", "missing_customer_id"
        if n % 5000 == 0 and previous and previous[1]:
            # The previous notification sent again under a new key a minute later.
            customer_id, refs, at = previous[1], previous[3], previous[4] + timedelta(minutes=1)
            slug, purpose, channel, provider, recipient = previous[5:]
            key = f"{slug}-{n}:{purpose}:{channel}"
            status, reason, dup_sends, identity = "delivered", None, 0, ""
            stats["dup_pairs"] += 1
        if status != "pending" and provider == "postmark" and at > provider_silent:
            # Postmark stopped reporting: its messages stay without an outcome.
            status, reason, dup_sends = "pending", None, 0
        stats["failures"] += reason is not None
        stats["dup_same_key"] += dup_sends
        stats["no_customer"] += identity != ""
        if status in ("pending", "deferred") and now - at > timedelta(minutes=2):
            stats["late"] += 1
        if slug == "shop-sender" and at > mapping_broken and n % 10 == 0:
            # The sender renamed `ts`: some of its lines no longer map.
            problem = {"index": None, "field": "ts", "message": "missing (maps to occurred_at)"}
            raw(slug, at, "quarantined", "ts: missing (maps to occurred_at)", [problem])
        sent_raw = raw(slug, at)
        settled = at + timedelta(seconds=30) if status not in ("pending", "deferred") else None
        message_id = f"m{n}"
        add_event(n, slug, sent_raw, "sent", at, 1, provider, message_id)
        if status == "deferred":
            add_event(
                n, slug, None, "deferred", at + timedelta(seconds=30), 1, provider, message_id
            )
        elif settled:
            # Postmark's callbacks come through their own source.
            reporter = "postmark" if provider == "postmark" else slug
            callback_raw = raw(reporter, settled) if reporter == "postmark" else None
            add_event(
                n, reporter, callback_raw, status, settled, None, provider, message_id, reason
            )
            if dup_sends:
                add_event(
                    n,
                    reporter,
                    None,
                    "delivered",
                    settled + timedelta(seconds=20),
                    1,
                    provider,
                    f"m{n}b",
                )
        notifications.add(
            id=n,
            source_id=sources[slug],
            notification_key=key,
            channel=channel,
            purpose=purpose,
            customer_id=customer_id,
            recipient=recipient,
            refs=json.dumps(refs),
            provider=provider,
            provider_message_id=message_id,
            final_status=status,
            first_event_at=at,
            last_event_at=settled or at,
            settled_at=settled,
            attempts=1,
            event_count=2 if settled else 1,
            duplicate_events=0,
            duplicate_sends=dup_sends,
            callback_only=False,
            identity_problem=identity,
            reason_key=reason.key if reason else "",
            reason_category=reason.category if reason else "",
            permanent=reason.permanent if reason else None,
            fix_owner=reason.fix_owner if reason else "",
            counts_as_failure=bool(reason),
            error_code="",
            error_message="",
            created_at=at,
            updated_at=now,
        )
        previous = (n, customer_id, purpose, refs, at, slug, purpose, channel, provider, recipient)
        if n % 200_000 == 0:
            notifications.write()
            raws.write()
            events.write()
    for n in range(300):
        raw("twilio", now - timedelta(hours=3, minutes=n % 60), "rejected", "signature mismatch")
    notifications.write()
    raws.write()
    events.write()
    return {**stats, "events": event_id, "raw events": raw_id}


def plain_scan() -> tuple[float, float]:
    """The same table read without any detection: one aggregate, and every id iterated."""
    from django.db import connection

    from notifwatch.deliveries.models import Notification

    table = Notification._meta.db_table
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), sum(attempts), sum(CASE WHEN counts_as_failure THEN 1 ELSE 0 END), "
            f'max(last_event_at) FROM "{table}"'
        )
        cursor.fetchone()
    aggregate = time.perf_counter() - started
    started = time.perf_counter()
    for _ in Notification.objects.values_list("id", flat=True).iterator(chunk_size=20_000):
        pass
    return aggregate, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    args = parser.parse_args()

    url = scratch_database(os.environ.get("DATABASE_URL"), SCRATCH)
    setup_django(url)
    from django.db import connection
    from django.db.models import Count

    from notifwatch.failures import detection
    from notifwatch.failures.models import FailureGroup

    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    stats = seed(args.notifications, now)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(
        f"database: {connection.vendor}; seeded {args.notifications:,} notifications in "
        f"{time.perf_counter() - started:.0f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in stats.items())
    )

    # Best of three: the first read after seeding also pays for a cold cache.
    scans = [plain_scan() for _ in range(3)]
    aggregate, ids = min(a for a, _ in scans), min(i for _, i in scans)
    print(f"plain scan, one aggregate over the table:   {aggregate:7.2f}s")
    print(f"plain scan, iterating every id:             {ids:7.2f}s")

    started = time.perf_counter()
    first = detection.run_checks(now)
    first_time = time.perf_counter() - started
    print(
        f"run_checks, first pass (creates exceptions): {first_time:7.2f}s  "
        f"= {first_time / aggregate:.0f}x the aggregate, {first_time / ids:.1f}x the id scan"
    )
    print("  new occurrences: " + ", ".join(f"{k} {v:,}" for k, v in first.items() if v))
    started = time.perf_counter()
    again = detection.run_checks(now + timedelta(minutes=1))
    second_time = time.perf_counter() - started
    print(
        f"run_checks, next pass (nothing new):         {second_time:7.2f}s  "
        f"= {second_time / aggregate:.0f}x the aggregate, {second_time / ids:.1f}x the id scan"
        f"  (new occurrences: {sum(v for k, v in again.items() if k != 'woken')})"
    )
    later = now + timedelta(minutes=2)
    since = later - detection.LOOKBACK
    rules = [
        ("delivery failures", lambda: detection.detect_delivery_failures(since)),
        ("late", lambda: detection.detect_late(later, since)),
        ("duplicate sends", lambda: detection.detect_duplicate_sends(since)),
        ("identity", lambda: detection.detect_identity(since)),
        ("mapping breaks", lambda: detection.detect_mapping_breaks(since, later)),
        ("rejected webhooks", lambda: detection.detect_rejected_webhooks(since, later)),
        ("silence", lambda: detection.detect_silence(later)),
    ]
    timings = []
    for name, rule in rules:
        started = time.perf_counter()
        rule()
        timings.append(f"{name} {time.perf_counter() - started:.2f}s")
    print("  per rule, third pass: " + ", ".join(timings))
    kinds = dict(
        FailureGroup.objects.values("kind").annotate(n=Count("id")).values_list("kind", "n")
    )
    print("  exceptions: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for title in FailureGroup.objects.filter(kind__in=("silence", "mapping_break")).values_list(
        "title", flat=True
    ):
        print(f"  - {title}")


if __name__ == "__main__":
    main()
