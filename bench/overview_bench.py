"""Overview benchmark: the home page, server side, over a week of traffic at scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/overview_bench.py
    .venv/bin/python bench/overview_bench.py --notifications 100000      # SQLite (temp file)
    ... --reuse            # keep the seeded scratch database from the last run (PostgreSQL)

It creates its own scratch database (nw_overview_bench on PostgreSQL, a temp file on SQLite) and
seeds it with COPY: notifications spread over 8 days and ~20 sources (14 senders, 6 providers
that report outcomes of the senders' messages), a raw event per notification, and a few
thousand exceptions (with the occurrences of the late ones, and two silent providers). Then it
times the overview page through Django's test client (middleware, session, template and all;
median of --runs after a warm-up) and each of its queries on its own: first counted live, then
over the rollup that the worker keeps (with the time of a full and of an incremental recount,
and a check that both ways count the same). --explain shows the plan of the live count.
Figures are ratios within one run: these machines drift.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.queue_bench import OCCURRENCE_COLUMNS  # noqa: E402
from bench.scratch import copy_rows, scratch_database, setup_django  # noqa: E402

SCRATCH = "nw_overview_bench"
DAYS = 8
TARGET_MS = 100

SENDERS = [
    ("shop-sender", "Shop sender"),
    ("billing-api", "Billing API"),
    ("crm-csv", "CRM reminders"),
    ("support-desk", "Support desk"),
    ("push-sender", "Push sender"),
    ("auth-service", "Login codes"),
    ("marketing", "Marketing"),
    ("bookings", "Bookings"),
    ("returns", "Returns"),
    ("loyalty", "Loyalty"),
    ("partner-api", "Partner API"),
    ("inventory", "Inventory alerts"),
    ("zapier", "Zapier flows"),
    ("sheets", "Spreadsheet handoff"),
]
PROVIDERS = [
    ("postmark", "Postmark", "postmark"),
    ("sendgrid", "SendGrid", "sendgrid"),
    ("mailgun", "Mailgun", "mailgun"),
    ("ses", "Amazon SES", "ses"),
    ("twilio", "Twilio", "twilio"),
    ("brevo", "Brevo", "brevo"),
]
CHANNELS = [("email", 65), ("sms", 15), ("push", 15), ("in_app", 5)]
# (final status, share per 10,000, counts as failure)
STATUSES = [
    ("delivered", 9300, False),
    ("failed", 250, True),
    ("bounced", 170, True),
    ("suppressed", 120, None),  # a third of them follow an earlier bounce: failures
    ("pending", 140, False),
    ("deferred", 10, False),
    ("complained", 10, False),
]
KINDS = [
    ("delivery_failure", 40),
    ("late", 10),
    ("duplicate_send", 10),
    ("identity", 15),
    ("mapping_break", 10),
    ("silence", 5),
    ("rejected_webhooks", 10),
]
TEAMS = ["Engineering", "CRM admins", "Billing", "Support leads", "Mobile app"]


def weighted(rng: random.Random, choices: list[tuple]) -> tuple:
    return rng.choices(choices, weights=[c[1] for c in choices])[0]


def seed(count: int, now: datetime, *, row_hook=None, exceptions: bool = True) -> dict[str, int]:
    """A week (and a day) of notifications, their raw events, and exceptions about them.

    For other benchmarks (bench/review_bench.py): `row_hook`, if given, receives each
    notification row (a dict by column name) and returns the row to write; with
    `exceptions` false, only the sources, notifications and raw events are seeded.
    """
    from django.contrib.auth import get_user_model

    from notifwatch.accounts.models import Membership, Team
    from notifwatch.deliveries.models import Notification
    from notifwatch.deliveries.recording import NOTIFICATION_COLUMNS
    from notifwatch.failures.models import FailureGroup, Occurrence
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.importer import RAW_COLUMNS
    from notifwatch.ingest.models import RawEvent

    rng = random.Random(5)
    senders = [save_source(slug=s, kind="json", name=n).source.pk for s, n in SENDERS]
    providers = {
        slug: save_source(slug=slug, kind=kind, name=name, secret="u:p").source.pk
        for slug, name, kind in PROVIDERS
    }
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    # Two providers went quiet: postmark 30 hours ago, twilio 6 hours ago.
    quiet_since = {providers["postmark"]: now - timedelta(hours=30)}
    quiet_since[providers["twilio"]] = now - timedelta(hours=6)
    provider_ids = list(providers.values())
    pending_ids: list[tuple[int, datetime, int, str]] = []

    def moment() -> datetime:
        # Busier in the day than at night: accept a uniform moment by its hour's weight.
        while True:
            at = start + timedelta(seconds=rng.random() * span)
            if rng.random() < 0.25 + 0.75 * max(0.0, 1 - abs(at.hour - 13) / 10):
                return at

    # In the order they happened, as ingest writes them: rows of one hour sit together.
    moments = sorted(moment() for _ in range(count))

    def notification_rows():
        for n in range(1, count + 1):
            at = moments[n - 1]
            source = senders[n % len(senders)] if n % 50 else rng.choice(provider_ids)
            channel = weighted(rng, CHANNELS)[0]
            status, _, failure = weighted(rng, STATUSES)
            if failure is None:
                failure = n % 3 == 0
            settled = None if status in ("pending", "deferred") else at + timedelta(seconds=20)
            if status in ("pending", "deferred") and n % 4 == 0:
                pending_ids.append((n, at, source, channel))
            identity = "missing_customer_id" if n % 97 == 0 else ""
            row = {
                "id": n,
                "source_id": source,
                "notification_key": f"bench-{n}",
                "channel": channel,
                "purpose": "order_confirmation" if n % 3 else "invoice_available",
                "customer_id": "" if identity else f"cus_{n % 150_000}",
                "recipient": f"customer{n % 150_000}@example.com",
                "refs": "{}",
                "provider": "sendgrid",
                "provider_message_id": f"m{n}",
                "final_status": status,
                "first_event_at": at,
                "last_event_at": settled or at,
                "settled_at": settled,
                "attempts": 1,
                "event_count": 2 if settled else 1,
                "duplicate_events": 0,
                "duplicate_sends": 1 if n % 1000 == 7 else 0,
                "callback_only": source in provider_ids,
                "identity_problem": identity,
                "reason_key": "",
                "reason_category": "",
                "permanent": None,
                "fix_owner": "",
                "counts_as_failure": failure,
                "error_code": "",
                "error_message": "",
                "created_at": at,
                "updated_at": settled or at,  # when it last settled, as ingest stamps it
            }
            if row_hook is not None:
                row = row_hook(row)
            yield tuple(row[column] for column in NOTIFICATION_COLUMNS)

    written = copy_rows(Notification, NOTIFICATION_COLUMNS, notification_rows())

    def raw_rows():
        # One raw event per notification from its sender, one per 3 from a provider.
        for n in range(1, count + 1):
            at = start + timedelta(seconds=span * n / count)
            source = senders[n % len(senders)] if n % 3 else provider_ids[n % len(provider_ids)]
            if source in quiet_since and at > quiet_since[source]:
                source = senders[n % len(senders)]
            outcome = "quarantined" if n % 5000 == 0 else "rejected" if n % 7001 == 0 else "parsed"
            yield (
                n,
                source,
                at,
                "webhook",
                "",
                "{}",
                b"{}",
                f"{n:064x}",
                "",
                None,
                outcome,
                "[]",
                "",
                1,
                None,
            )

    # The columns ingest's importer writes raw events with (processed_at left empty).
    raws = copy_rows(RawEvent, RAW_COLUMNS, raw_rows())

    if not exceptions:
        return {"notifications": written, "raw events": raws}
    teams = [Team.objects.create(name=name) for name in TEAMS]
    user = get_user_model().objects.create_user("bench-viewer", password="x")
    Membership.objects.create(user=user, role="viewer")
    groups = []
    for i in range(3000):
        kind = weighted(rng, KINDS)[0]
        seen = start + timedelta(seconds=rng.random() * span)
        status = rng.choices(
            ["new", "assigned", "regressed", "resolved", "accepted", "snoozed"],
            weights=[30, 25, 5, 25, 10, 5],
        )[0]
        team = None if rng.random() < 0.2 else rng.choice(teams)
        groups.append(
            FailureGroup(
                kind=kind,
                title=f"{kind} #{i}",
                status=status,
                source_id=rng.choice(senders),
                channel=weighted(rng, CHANNELS)[0],
                team=team,
                occurrences=rng.randint(1, 500),
                customers_not_reached=rng.randint(0, 200),
                first_seen=seen,
                last_seen=seen,
            )
        )
    for slug in ("postmark", "twilio"):
        groups.append(
            FailureGroup(
                kind="silence",
                title=f"{slug} stopped",
                status="new",
                source_id=providers[slug],
                detail={"mode": "stopped_sending", "observed": 0, "expected": 300, "hours": 3},
                first_seen=now,
                last_seen=now,
            )
        )
    FailureGroup.objects.bulk_create(groups, batch_size=1000)
    late_groups = list(FailureGroup.objects.filter(kind="late").values_list("id", flat=True))

    def occurrence_rows():
        for k, (pk, at, _source, _channel) in enumerate(pending_ids):
            yield (k + 1, late_groups[k % len(late_groups)], pk, None, "", "", at)

    occurrences = copy_rows(Occurrence, OCCURRENCE_COLUMNS, occurrence_rows())
    return {
        "notifications": written,
        "raw events": raws,
        "exceptions": len(groups),
        "late occurrences": occurrences,
    }


def median_ms(fn, runs: int) -> tuple[float, float]:
    fn()  # warm-up: caches, first plan
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--reuse", action="store_true", help="keep the last run's scratch data")
    parser.add_argument("--explain", action="store_true", help="print the main query's plan")
    args = parser.parse_args()

    url = scratch_database(os.environ.get("DATABASE_URL"), SCRATCH, reuse=args.reuse)
    setup_django(url)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from notifwatch.deliveries.counts import refresh_notification_counts
    from notifwatch.deliveries.models import (
        Notification,
        NotificationCount,
        NotificationCountMark,
    )

    now = timezone.now().replace(microsecond=0)
    if not (args.reuse and Notification.objects.exists()):
        started = time.perf_counter()
        stats = seed(args.notifications, now)
        # The weekly figures the exceptions keep (the overview's late column reads them).
        from notifwatch.failures.detection import refresh_growth

        refresh_growth(now)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # What autovacuum would have done by now: statistics, and the visibility map
                # that index-only scans rely on.
                cursor.execute("VACUUM ANALYZE")
        print(
            f"database: {connection.vendor}; seeded in {time.perf_counter() - started:.0f}s: "
            + ", ".join(f"{k} {v:,}" for k, v in stats.items())
        )
    else:
        now = Notification.objects.order_by("-first_event_at").values_list(
            "first_event_at", flat=True
        )[0]
        print(f"database: {connection.vendor}; reusing the seeded data (week ending {now:%c})")

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-viewer"))
    print("Counted live (no rollup yet):")
    NotificationCountMark.objects.all().delete()
    live_median = time_steps(client, now, args.runs)
    if args.explain and connection.vendor == "postgresql":
        explain(now)

    print("With the rollup (what the worker keeps every minute):")
    for label, full in (("full recount, 8 days", True), ("a pass with nothing changed", False)):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            refresh_notification_counts(full=full)
            times.append((time.perf_counter() - started) * 1000)
        print(f"  refresh: {label:<29} median {statistics.median(times):7.1f} ms")
    print(f"  rollup rows: {NotificationCount.objects.count():,}")
    check_same_counts(now)
    # The page runs at the wall clock; keep the rollup as fresh as the worker would.
    refresh_notification_counts()
    rollup_median = time_steps(client, timezone.now(), args.runs)
    print(f"GET /: rollup / live = {rollup_median / live_median:.2f}")


def time_steps(client, now, runs: int) -> float:
    from django.urls import reverse

    from notifwatch.deliveries import overview
    from notifwatch.deliveries.counts import notification_buckets

    week_start, day_start = now - overview.WEEK, now - overview.DAY
    origin = overview.chart_origin(week_start)
    hours = overview.CHART_HOURS
    steps = [
        ("sources + last raw event", lambda: overview.all_sources(week_start)),
        (
            "notifications by source/channel/3 hours",
            lambda: notification_buckets(origin, week_start, day_start, now, hours),
        ),
        ("late (from the exceptions)", overview.late_counts),
        ("open exceptions by kind/team", overview.open_exception_rows),
        ("open silences", overview.open_silences),
        ("build_overview (all of the above)", lambda: overview.build_overview(now)),
    ]
    for name, step in steps:
        median, worst = median_ms(step, runs)
        print(f"  {name:<38} median {median:7.1f} ms  (max {worst:6.1f})")
    home = reverse("home")

    def page():
        response = client.get(home)
        assert response.status_code == 200, response.status_code

    median, worst = median_ms(page, runs)
    verdict = "within" if median < TARGET_MS else "OVER"
    print(
        f"  GET / (the overview page, test client) median {median:7.1f} ms  (max {worst:6.1f})"
        f"  — {verdict} the {TARGET_MS} ms target"
    )
    return median


def check_same_counts(now) -> None:
    """The rollup must add up to exactly what counting live gives, or its figures mean nothing."""
    from notifwatch.deliveries import overview
    from notifwatch.deliveries.counts import INSTANT, live_buckets, notification_buckets

    week_start, day_start = now - overview.WEEK, now - overview.DAY
    origin = overview.chart_origin(week_start)
    hours = overview.CHART_HOURS
    live = live_buckets(origin, [(week_start, now + INSTANT)], day_start, hours)
    rolled = notification_buckets(origin, week_start, day_start, now, hours)
    assert overview.fold(live) == overview.fold(rolled), "the rollup must count the same"
    print("  rollup and live counts agree")


def explain(now) -> None:
    """The plan of the heaviest query, counted live, as Django sends it."""
    from django.db import connection

    from notifwatch.deliveries import overview
    from notifwatch.deliveries.counts import INSTANT, live_buckets

    week_start, day_start = now - overview.WEEK, now - overview.DAY
    origin = overview.chart_origin(week_start)
    captured = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        live_buckets(origin, [(week_start, now + INSTANT)], day_start, overview.CHART_HOURS)
    sql, params = captured[0]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        print("\n".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
