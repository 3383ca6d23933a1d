"""Review benchmark: every page a reviewer reads, server side, over a realistic volume.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/review_bench.py
    .venv/bin/python bench/review_bench.py --notifications 50000 --exceptions 5000   # SQLite
    ... --reuse            # keep the seeded scratch database from the last run (PostgreSQL)

It creates its own scratch database (nw_review_bench on PostgreSQL, a temp file on SQLite) and
seeds it with COPY (issue 5, item 9): 1M notifications over 8 days and 20 sources with their
business references (order, ticket, invoice ids), ~5 delivery events each (queued, sent,
deferred, delivered, bounced, opened...: at the notification's own times), a raw event each,
50k exceptions (bench/queue_bench.py's shares) whose occurrences point at real notifications or
raw events, three big exceptions of 50k-100k occurrences, teams and a reviewer. On PostgreSQL
the big tables' secondary indexes and constraints are dropped for the load and put back as
they were (the schema is checked to be exactly the migrated one), then VACUUM ANALYZE.

The periodic refreshes that pages read, where the app has them, run once (timed) before the
timing: each exception's growth (detection.refresh_growth, for the queue's order) and the
overview's rollup (notifwatch.deliveries.counts, or .rollup as first planned: once in full,
then once incrementally). Then every page is timed through Django's test client, logged in as
a reviewer (middleware, session, template and all): median and max of --runs after a warm-up,
each response checked for status 200 and for what it must show, so a broken page cannot look
fast. Queue deep pages are reached by following Next links. Pages over 100 ms, or deep queue
pages over 2x their first page, get the plan of their slowest query. Figures are ratios within
one run (the baseline line is a trivial request): these machines drift.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import re
import statistics
import sys
import time
from array import array
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from html import escape, unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import overview_bench, queue_bench  # noqa: E402
from bench.scratch import copy_rows, scratch_database, setup_django  # noqa: E402

SCRATCH = "nw_review_bench"
TARGET_MS = 100
DEEP_PAGE = 300
DEEP_RATIO = 2.0
REVIEWER = "bench-reviewer"

# The tables COPY fills by the million: loaded without their secondary indexes and
# constraints (PostgreSQL), which are then rebuilt exactly as the migrations made them.
LOAD_TABLES = (
    "deliveries_notification",
    "deliveries_notificationref",
    "deliveries_deliveryevent",
    "failures_occurrence",
    "ingest_rawevent",
)

STATUS_CODES = ("pending", "deferred", "delivered", "bounced", "failed", "suppressed", "complained")
SETTLED = {"delivered", "bounced", "failed", "suppressed", "complained"}
OUTCOME_EVENTS = {"delivered", "bounced", "failed", "suppressed", "complained", "opened", "clicked"}

# What the providers said, per final status (reason keys from the reason catalog).
ERRORS = {
    "bounced": ("smtp:5.1.1", "550", "5.1.1 <{r}>: Recipient address rejected: User unknown"),
    "failed": ("smtp:5.7.1", "554", "5.7.1 Message rejected as spam by the receiving server"),
    "deferred": ("smtp:4.2.2", "452", "4.2.2 Mailbox full, try again later"),
}
# The big exceptions, each over a slice of the notifications (by id modulo): a provider outage
# (the biggest), notifications delivered two hours late, and a sender that sent twice.
BIG_FAILURE, BIG_LATE, BIG_DUPLICATE = (10, 3), (16, 5), (20, 7)
OUTAGE = ("smtp:421", "421", "4.3.2 Service not available, closing transmission channel")
LATE_AFTER = 7200.0  # when the late ones got their outcome, in seconds after the first event
LATE_WINDOW = 3600  # the timing window they missed
BIG_TITLES = {
    "failure": "Order confirmation email: provider refused sends during an outage",
    "late": "Order confirmation email: no outcome within the hour",
    "duplicate": "Order confirmation email: sent twice after a retry",
}
HEAVY_RECIPIENT = "ops@bigcustomer.example"  # a business customer: every 2,000th notification


def big_slice(n: int, spec: tuple[int, int]) -> bool:
    return n % spec[0] == spec[1]


def is_late(n: int) -> bool:
    return big_slice(n, BIG_LATE) and not big_slice(n, BIG_FAILURE)


def refs_of(n: int, purpose: str) -> dict[str, str]:
    """The business references a notification carries (two order mails share an order id)."""
    if purpose == "order_confirmation":
        refs = {"order_id": f"ORD-{100_000 + n // 2}"}
    else:
        refs = {"invoice_id": f"INV-{n:07d}"}
    if n % 10 == 0:
        refs["ticket_id"] = f"T-{n // 10}"
    return refs


def event_plan(n: int, status: str, per: int) -> list[tuple[str, float]]:
    """A notification's events as (type, seconds after its first event): queued, sent, the
    outcome 20 s later (two hours for the late slice), retries before it or opens and clicks
    after it, so there are `per` on average. Deterministic in n: the notification's counts
    and its events are computed apart."""
    target = max(1, per + n % 3 - 1)
    outcome_at = LATE_AFTER if is_late(n) else 20.0
    head = [("queued", 0.0)] if status == "suppressed" else [("queued", 0.0), ("sent", 1.0)]
    if status in ("pending", "deferred"):
        tail = []
    elif status == "complained":
        tail = [("delivered", outcome_at), ("complained", outcome_at + 3600.0)]
    else:
        tail = [(status, outcome_at)]
    pad = max(0, target - len(head) - len(tail))
    if status in ("delivered", "complained"):
        kinds = ("opened", "clicked")
        return head + tail + [(kinds[k % 2], outcome_at + 60.0 * (k + 1)) for k in range(pad)]
    # Retries: between the send and the outcome, or after the send while still waiting.
    span = outcome_at - 1.0 if tail else 30.0 * (pad + 1)
    return head + [("deferred", 1.0 + span * (k + 1) / (pad + 1)) for k in range(pad)] + tail


class Seeder:
    """What the seed needs to remember between tables, in compact arrays indexed by id - 1."""

    def __init__(self, count: int, per: int, now: datetime):
        from notifwatch.failures.reasons import reason_by_key

        self.count, self.per, self.now = count, per, now
        self.now_ts = now.timestamp()
        self.at = array("d")  # first event, as a timestamp (ascending: ids follow time)
        self.status = bytearray()
        self.source = array("q")
        self.reasons = {key: reason_by_key(key) for key, *_ in [*ERRORS.values(), OUTAGE]}
        assert all(self.reasons.values()), self.reasons

    # --- notifications (overview_bench.seed's rows, adjusted) ----------------------------

    def notification(self, row: dict) -> dict:
        """overview_bench.seed's row_hook: the notification row by column name, changed."""
        n, at = row["id"], row["first_event_at"]
        status = row["final_status"]
        if big_slice(n, BIG_FAILURE):
            status = "failed"
        elif is_late(n):
            status = "delivered" if at.timestamp() + LATE_AFTER <= self.now_ts else "pending"
        row["final_status"] = status
        row["refs"] = json.dumps(refs_of(n, row["purpose"]))
        if n % 2000 == 1:
            row["recipient"] = HEAVY_RECIPIENT
            row["customer_id"] = row["customer_id"] and "cus_bigcustomer"
        if big_slice(n, BIG_DUPLICATE):
            row["duplicate_sends"] = 1
        plan = event_plan(n, status, self.per)
        offsets = [offset for _, offset in plan]
        last = min(at.timestamp() + max(offsets), self.now_ts)
        row["last_event_at"] = datetime.fromtimestamp(last, UTC)
        row["event_count"] = len(plan)
        row["attempts"] = 1 + sum(1 for kind, _ in plan if kind == "deferred")
        outcome = [offset for kind, offset in plan if kind in SETTLED]
        row["settled_at"] = at + timedelta(seconds=outcome[0]) if status in SETTLED else None
        row["counts_as_failure"] = status in ("failed", "bounced") or (
            status == "suppressed" and n % 3 == 0
        )
        error = OUTAGE if big_slice(n, BIG_FAILURE) else ERRORS.get(status)
        if error:
            key, code, message = error
            reason = self.reasons[key]
            row["reason_key"], row["reason_category"] = reason.key, reason.category
            row["permanent"], row["fix_owner"] = reason.permanent, reason.fix_owner
            row["error_code"], row["error_message"] = code, message.format(r=row["recipient"])
        self.at.append(at.timestamp())
        self.status.append(STATUS_CODES.index(status))
        self.source.append(row["source_id"])
        return row

    def customer(self, n: int) -> str:
        if n % 97 == 0:
            return ""
        return "cus_bigcustomer" if n % 2000 == 1 else f"cus_{n % 150_000}"

    # --- references and events --------------------------------------------------------

    def ref_rows(self):
        pk = 0
        for n in range(1, self.count + 1):
            purpose = "order_confirmation" if n % 3 else "invoice_available"
            for name, value in sorted(refs_of(n, purpose).items()):
                pk += 1
                yield (pk, n, name, value)

    def event_rows(self, providers: list[int]):
        pk, now_ts, per = 0, self.now_ts, self.per
        provider_set = set(providers)
        stamp = datetime.fromtimestamp
        for n in range(1, self.count + 1):
            status = STATUS_CODES[self.status[n - 1]]
            at, sender = self.at[n - 1], self.source[n - 1]
            provider = sender if sender in provider_set else providers[n % len(providers)]
            error = OUTAGE if big_slice(n, BIG_FAILURE) else ERRORS.get(status)
            attempt = 0
            for k, (kind, offset) in enumerate(event_plan(n, status, per)):
                pk += 1
                moment = min(at + offset, now_ts)
                code = message = reason_key = category = ""
                permanent = None
                if kind in ("deferred", "sent"):
                    attempt += 1
                if error and kind in ("deferred", "failed", "bounced"):
                    key, code, message = ERRORS["deferred"] if kind == "deferred" else error
                    reason = self.reasons[key]
                    reason_key, category, permanent = reason.key, reason.category, reason.permanent
                    message = message.format(r=f"customer{n % 150_000}@example.com")
                yield (
                    pk,
                    n,
                    provider if kind in OUTCOME_EVENTS else sender,
                    n if k == 0 else None,  # the sender's first report is raw event n
                    0,
                    f"{n}-{k}",
                    kind,
                    stamp(moment, UTC),
                    stamp(moment + 0.5, UTC),
                    attempt if kind in ("sent", "deferred") else None,
                    "sendgrid",
                    "" if kind == "queued" else f"m{n}",
                    code,
                    message,
                    reason_key,
                    category,
                    permanent,
                    0,
                    None,
                )

    # --- occurrences -------------------------------------------------------------------

    def queue_occurrence(self):
        """queue_bench.seed's occurrence rows, pointed at the notification sent at that moment
        (or a raw event, for the ingest kinds). Its older exceptions reach back 90 days, before
        the 8 days seeded: those point at a notification picked by id, keeping their time."""
        used: set[int] = set()
        current = [None]

        def occurrence(row: tuple, kind: str) -> tuple:
            pk, group, _, _, subject, _, at = row
            if kind == "silence":
                return row
            if current[0] != group:
                current[0] = group
                used.clear()
            i = bisect_left(self.at, at.timestamp())
            if i >= self.count or self.at[i] - at.timestamp() > 3600:
                i = (pk * 7919) % self.count
            while i in used:
                i = (i + 1) % self.count
            used.add(i)
            if kind in ("mapping_break", "rejected_webhooks"):
                return (pk, group, None, i + 1, "", "", at)
            return (pk, group, i + 1, None, "", self.customer(i + 1), at)

        return occurrence


def seed_big_exceptions(seeder: Seeder, sender: int, team: int) -> dict[str, int]:
    """Three exceptions of 50k-100k occurrences each (at 1M notifications), with their rows."""
    from django.db.models import Max

    from notifwatch.failures.models import FailureGroup, GroupHistory, Occurrence

    now, count = seeder.now, seeder.count
    first_group = (FailureGroup.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    first_occurrence = (Occurrence.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    specs = [
        # name, slice, kind, status, team, seconds after the first event, share not reached
        ("failure", BIG_FAILURE, "delivery_failure", "assigned", team, 20.0, 1.0),
        ("late", BIG_LATE, "late", "new", None, float(LATE_WINDOW), None),
        ("duplicate", BIG_DUPLICATE, "duplicate_send", "regressed", None, 1.0, 0.0),
    ]
    groups, sizes, occurrences = [], {}, []
    pk = first_occurrence
    for offset, (name, spec, kind, status, owner, after, not_reached) in enumerate(specs):
        group = first_group + offset
        customers, pending, moments = set(), set(), []
        for n in range(spec[1], count + 1, spec[0]):
            if name == "late" and not is_late(n):
                continue
            moment = seeder.at[n - 1] + after
            if moment > seeder.now_ts:
                continue  # not late (or not failed) yet
            customer = seeder.customer(n)
            occurrences.append(
                (pk, group, n, None, "", customer, datetime.fromtimestamp(moment, UTC))
            )
            pk += 1
            customers.add(customer or f"n{n}")
            moments.append(moment)
            if STATUS_CODES[seeder.status[n - 1]] == "pending":
                pending.add(customer or f"n{n}")
        affected = len(customers)
        unreached = len(pending) if not_reached is None else round(affected * not_reached)
        reason = seeder.reasons[OUTAGE[0]] if kind == "delivery_failure" else None
        first, last = (datetime.fromtimestamp(m, UTC) for m in (min(moments), max(moments)))
        groups.append(
            (
                group,
                kind,
                BIG_TITLES[name],
                status,
                sender,
                "email",
                "order_confirmation",
                reason.category if reason else "",
                reason.fix_owner if reason else "",
                reason.key if reason else "",
                json.dumps({"window_seconds": LATE_WINDOW} if kind == "late" else {}),
                owner,
                None,
                None,
                None,
                len(moments),
                affected,
                affected - unreached,
                unreached,
                first,
                last,
                None,
                None,
                first,
                now,
            )
        )
        sizes[f"{name} #{group}"] = len(moments)
    copy_rows(FailureGroup, queue_bench.GROUP_COLUMNS, groups)
    copy_rows(Occurrence, queue_bench.OCCURRENCE_COLUMNS, occurrences)
    for group in groups:
        GroupHistory.objects.create(group_id=group[0], kind="created", rule="bench")
        if group[11]:
            GroupHistory.objects.create(
                group_id=group[0], kind="assigned", new={"team": group[11]}, comment="bench"
            )
    return sizes


# --- Loading without indexes (PostgreSQL) --------------------------------------------------


def schema_snapshot(cursor) -> list[str]:
    """Every index and constraint of the schema, as PostgreSQL would re-create it."""
    cursor.execute(
        """
        SELECT format('index %s on %s: %s', ci.relname, ct.relname, pg_get_indexdef(i.indexrelid))
        FROM pg_index i
        JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class ct ON ct.oid = i.indrelid
        WHERE ct.relnamespace = current_schema()::regnamespace
        UNION ALL
        SELECT format('constraint %s on %s: %s (validated: %s)', c.conname, ct.relname,
                      pg_get_constraintdef(c.oid), c.convalidated)
        FROM pg_constraint c JOIN pg_class ct ON ct.oid = c.conrelid
        WHERE ct.relnamespace = current_schema()::regnamespace
        ORDER BY 1
        """
    )
    return [row[0] for row in cursor.fetchall()]


def drop_for_load(cursor, tables: tuple[str, ...]) -> list[str]:
    """Drop the secondary indexes and the unique and foreign-key constraints of `tables`;
    return the statements that put them back as they were (uniques, indexes, then keys)."""
    cursor.execute(
        """
        SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname),
               format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', c.conrelid::regclass, c.conname,
                      pg_get_constraintdef(c.oid)),
               c.contype
        FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('u', 'f')
        ORDER BY c.contype DESC, c.conname
        """,
        [list(tables)],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT format('DROP INDEX %%s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c
            WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
          )
        ORDER BY 1
        """,
        [list(tables)],
    )
    indexes = cursor.fetchall()
    for drop, _, _ in reversed(constraints):  # foreign keys first
        cursor.execute(drop)
    for drop, _ in indexes:
        cursor.execute(drop)
    uniques = [add for _, add, kind in constraints if kind == "u"]
    keys = [add for _, add, kind in constraints if kind == "f"]
    return uniques + [create for _, create in indexes] + keys


# --- Seeding ---------------------------------------------------------------------------------


def seed(count: int, per: int, exceptions: int, now: datetime) -> dict[str, int]:
    from django.contrib.auth.models import User
    from django.db import connection

    from notifwatch.accounts.models import Membership, Team
    from notifwatch.deliveries.models import DeliveryEvent, NotificationRef
    from notifwatch.deliveries.recording import EVENT_COLUMNS, REF_COLUMNS
    from notifwatch.ingest.models import Source

    postgresql = connection.vendor == "postgresql"
    stats: dict[str, int] = {}

    def step(name: str, started: float) -> None:
        print(f"  seeded {name} in {time.perf_counter() - started:.1f}s", flush=True)

    restore: list[str] = []
    if postgresql:
        with connection.cursor() as cursor:
            migrated = schema_snapshot(cursor)
            restore = drop_for_load(cursor, LOAD_TABLES)
            cursor.execute("SET synchronous_commit = off")

    seeder = Seeder(count, per, now)
    started = time.perf_counter()
    stats |= overview_bench.seed(count, now, row_hook=seeder.notification, exceptions=False)
    step("notifications and raw events (overview_bench.seed)", started)

    started = time.perf_counter()
    stats["references"] = copy_rows(NotificationRef, REF_COLUMNS, seeder.ref_rows())
    step("references", started)

    sources = dict(Source.objects.values_list("slug", "pk"))
    providers = [sources[slug] for slug, _, _ in overview_bench.PROVIDERS]
    started = time.perf_counter()
    # The columns ingest itself copies delivery events with.
    stats["delivery events"] = copy_rows(DeliveryEvent, EVENT_COLUMNS, seeder.event_rows(providers))
    step("delivery events", started)

    started = time.perf_counter()
    queue = queue_bench.seed(
        exceptions,
        now,
        sources=sorted(sources.values()),
        occurrence=seeder.queue_occurrence(),
    )
    stats["exceptions"] = exceptions
    stats["their occurrences"] = queue["occurrences"]
    team = Team.objects.order_by("name").values_list("pk", flat=True)[0]
    big = seed_big_exceptions(seeder, sources["shop-sender"], team)
    stats |= {f"big exception {name}": size for name, size in big.items()}
    reviewer = User.objects.create(username=REVIEWER, password="!")
    Membership.objects.create(user=reviewer, role="reviewer")
    step("exceptions, occurrences, teams, people", started)

    if postgresql:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for statement in restore:
                cursor.execute(statement)
            cursor.execute("RESET maintenance_work_mem")
            rebuilt = schema_snapshot(cursor)
        if rebuilt != migrated:
            missing = sorted(set(migrated) - set(rebuilt))
            extra = sorted(set(rebuilt) - set(migrated))
            raise SystemExit(f"schema differs from the migrations: {missing=} {extra=}")
        step(f"indexes and constraints ({len(restore)} rebuilt; schema as migrated)", started)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # What autovacuum would have done by now: statistics, and the visibility map
            # that index-only scans rely on.
            cursor.execute("VACUUM ANALYZE")
        step("VACUUM ANALYZE", started)
    return stats


# --- Timing ----------------------------------------------------------------------------------


class Page:
    """One page to time: its address, and what its response must contain."""

    def __init__(self, name: str, url: str, check, first: "Page | None" = None):
        self.name, self.url, self.check, self.first = name, url, check, first
        self.median = self.worst = 0.0
        self.queries, self.sql_ms, self.slowest = 0, 0.0, None

    def fetch(self, client):
        return client.get(self.url)

    def verify(self, response) -> None:
        assert response.status_code == 200, (self.name, self.url, response.status_code)
        problem = self.check(response.content.decode())
        assert not problem, (self.name, self.url, problem)

    def time(self, client, runs: int) -> None:
        for _ in range(2):  # warm-up: caches, first plans
            self.verify(self.fetch(client))
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            response = self.fetch(client)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (self.name, response.status_code)
        self.verify(response)
        self.median, self.worst = statistics.median(samples), max(samples)

    def profile(self, client) -> None:
        """One more request with its queries recorded: how many, and the slowest."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            self.verify(self.fetch(client))
        self.queries = len(captured.captured_queries)
        timed = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
        self.sql_ms = sum(ms for ms, _ in timed)
        self.slowest = max(timed, default=None)

    @property
    def ratio(self) -> float | None:
        return self.median / self.first.median if self.first and self.first.median else None

    @property
    def over(self) -> bool:
        return self.median >= TARGET_MS or (self.ratio is not None and self.ratio > DEEP_RATIO)


def contains(*needles: str):
    def check(html: str) -> str:
        missing = [needle for needle in needles if needle not in html]
        return f"missing {missing}" if missing else ""

    return check


def overview_check(sent: int):
    """The overview shows the week's notifications: within 1% of what was counted before
    (the week moves on while the benchmark runs), by source, and the open exceptions."""

    def check(html: str) -> str:
        problem = contains("By source", "Shop sender", "Open exceptions by kind")(html)
        found = re.search(r'<div class="stat-l">Sent</div>\s*<div class="stat-n">([\d,]+)<', html)
        if not found:
            return problem or "no week total"
        shown = int(found[1].replace(",", ""))
        if abs(shown - sent) > sent / 100:
            return f"week total {shown:,}, expected about {sent:,}"
        return problem

    return check


def queue_check(title: str, pk: int):
    """The page starts with the row OFFSET would put there (asked once, outside the timing)."""
    needle = f'<a href="/exceptions/{pk}/"><strong>{escape(title)}</strong></a>'

    def check(html: str) -> str:
        rows = html.split('<td class="title">')
        if len(rows) < 2:
            return "no rows"
        return "" if needle in rows[1] else f"first row is not #{pk} {title!r}"

    return check


def lookup_check(expected: list[int]):
    """Exactly the expected notifications, newest activity first (the first page of them)."""
    links = [f'href="/notifications/{pk}/"' for pk in expected]

    def check(html: str) -> str:
        shown = re.findall(r'href="/notifications/\d+/"', html)
        return "" if shown == links else f"shows {len(shown)} results, expected {len(links)}"

    return check


NEXT_LINK = re.compile(r'<a href="([^"]+)"[^>]*>Next \d+ →</a>')


def follow_next(client, url: str, page: int) -> tuple[str, int]:
    """The address of page `page` (or the last one), found as a person finds it: by following
    each page's Next link (asking for the table alone, as htmx does)."""
    reached = 1
    while reached < page:
        response = client.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code == 200, (url, response.status_code)
        found = NEXT_LINK.search(response.content.decode())
        if not found:
            break
        url, reached = unescape(found[1]), reached + 1
    return url, reached


def queue_pages(client, views: list[tuple[str, str]]) -> list[Page]:
    from django.http import QueryDict

    from notifwatch.failures.filters import IMPACT_ORDER, QueueFilter
    from notifwatch.failures.models import FailureGroup
    from notifwatch.failures.views import PAGE_SIZE

    pages = []
    for name, query in views:
        first_url = "/exceptions/" + (f"?{query}" if query else "")
        groups = QueueFilter(QueryDict(query), queryset=FailureGroup.objects.all()).qs
        groups = groups.order_by(*IMPACT_ORDER).values_list("pk", "title")
        first = Page(f"queue {name}: first page", first_url, queue_check(*groups[0][::-1]))
        pages.append(first)
        deep_url, page = follow_next(client, first_url, DEEP_PAGE)
        if page > 1:
            pk, title = groups[PAGE_SIZE * (page - 1)]
            label = f"page {page}" + ("" if page == DEEP_PAGE else ", the last")
            pages.append(Page(f"queue {name}: {label}", deep_url, queue_check(title, pk), first))
    return pages


def exception_pages() -> list[Page]:
    from notifwatch.failures.models import FailureGroup, Occurrence

    small = (
        FailureGroup.objects.filter(
            kind="delivery_failure", status="new", occurrences__range=(3, 12)
        )
        .exclude(title__in=BIG_TITLES.values())
        .order_by("id")
        .first()
    )
    chosen = [("small", small)] + [
        (name, FailureGroup.objects.get(title=title)) for name, title in BIG_TITLES.items()
    ]
    pages = []
    for name, group in chosen:
        newest = Occurrence.objects.filter(group=group).order_by("-occurred_at", "-id").first()
        rows = Occurrence.objects.filter(group=group).count()
        link = (
            f"/notifications/{newest.notification_id}/"
            if newest.notification_id
            else f"/raw/{newest.raw_event_id}/"
        )
        label = {"small": "a small one", "failure": "the biggest"}.get(name, f"big {name}")
        pages.append(
            Page(
                f"exception page: {label} ({rows:,} occurrences)",
                f"/exceptions/{group.pk}/",
                contains(f"<h1>{escape(group.title)}</h1>", link),
            )
        )
    return pages


def lookup_pages(count: int) -> list[Page]:
    from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef

    # A notification from the middle of the week: an order confirmation with a customer id.
    n = (
        Notification.objects.filter(id__gte=count // 2, purpose="order_confirmation")
        .exclude(customer_id="")
        .exclude(customer_id="cus_bigcustomer")
        .order_by("id")
        .first()
    )
    order = NotificationRef.objects.get(notification=n, name="order_id").value
    newest = Notification.objects.order_by("-last_event_at", "-id")

    def found(ids) -> list[int]:
        return list(newest.filter(id__in=ids).values_list("id", flat=True)[:50])

    order_ids = NotificationRef.objects.filter(value=order).values("notification_id")
    lookups = [
        (f"order id {order}", order, found(order_ids)),
        (
            f"customer id {n.customer_id}",
            n.customer_id,
            found(newest.filter(customer_id=n.customer_id).values("id")),
        ),
        (
            f"recipient {n.recipient}",
            n.recipient,
            found(newest.filter(recipient=n.recipient).values("id")),
        ),
        (
            f"business {HEAVY_RECIPIENT} of "
            f"{Notification.objects.filter(recipient=HEAVY_RECIPIENT).count():,}",
            HEAVY_RECIPIENT,
            found(newest.filter(recipient=HEAVY_RECIPIENT).values("id")),
        ),
    ]
    pages = [
        Page(
            f"lookup {name} ({len(expected)} shown)",
            f"/notifications/?q={q}",
            lookup_check(expected),
        )
        for name, q, expected in lookups
    ]
    events = DeliveryEvent.objects.filter(notification=n).count()

    def timeline(html: str) -> str:
        shown = html.count('<li id="event-')
        return "" if shown == events else f"{shown} events shown, expected {events}"

    pages.append(
        Page(f"notification timeline ({events} events)", f"/notifications/{n.pk}/", timeline)
    )
    return pages


def explain(page: Page, explained: dict[str, str]) -> None:
    """The plan of the page's slowest query (once per query: pages share some)."""
    from django.db import connection

    ms, sql = page.slowest
    print(
        f"\n{page.name}: {page.median:.1f} ms median, {page.queries} queries; slowest {ms:.1f} ms:"
    )
    if sql in explained:
        print(f"  the same query as for {explained[sql]!r}, above")
        return
    explained[sql] = page.name
    print(f"  {sql}")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        print("\n".join("  " + " ".join(map(str, row[-1:])) for row in cursor.fetchall()))


# The overview's rollup refresh, under the names it has had: called once in full after seeding
# (then once incrementally, as the worker does every minute), before the overview is timed.
ROLLUPS = (
    ("notifwatch.deliveries.rollup", "refresh_notification_hours"),
    ("notifwatch.deliveries.counts", "refresh_notification_counts"),
)


def find_rollup():
    for module, name in ROLLUPS:
        if importlib.util.find_spec(module) is not None:
            refresh = getattr(importlib.import_module(module), name, None)
            if refresh is not None:
                return f"{module}.{name}", refresh
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--events-per-notification", type=int, default=5)
    parser.add_argument("--exceptions", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the last run's scratch data")
    args = parser.parse_args()

    url = scratch_database(os.environ.get("DATABASE_URL"), SCRATCH, reuse=args.reuse)
    setup_django(url)
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.test import Client
    from django.utils import timezone

    from notifwatch.accounts.models import Team
    from notifwatch.deliveries.models import Notification
    from notifwatch.ingest.models import Source

    now = timezone.now().replace(microsecond=0)
    if args.reuse and User.objects.filter(username=REVIEWER).exists():
        count = Notification.objects.count()
        print(f"database: {connection.vendor}; reusing the seeded data ({count:,} notifications)")
    else:
        count = args.notifications
        print(f"database: {connection.vendor}; seeding...", flush=True)
        started = time.perf_counter()
        # SQLite in autocommit commits every row: one transaction for the whole load.
        sqlite = connection.vendor == "sqlite"
        with transaction.atomic() if sqlite else contextlib.nullcontext():
            stats = seed(count, args.events_per_notification, args.exceptions, now)
        print(
            f"seeded in {time.perf_counter() - started:.0f}s: "
            + ", ".join(f"{k} {v:,}" for k, v in stats.items())
        )

    # The periodic checks' figures that pages read, where the app has them yet.
    from notifwatch.failures import detection

    if hasattr(detection, "refresh_growth"):
        started = time.perf_counter()
        changed = detection.refresh_growth(timezone.now())
        took = time.perf_counter() - started
        print(
            f"exceptions' growth: detection.refresh_growth took {took * 1000:.0f} ms ({changed:,} changed)"
        )
    path, refresh = find_rollup()
    if refresh is not None:
        for full in (True, False):
            started = time.perf_counter()
            done = refresh(full=full)
            took = time.perf_counter() - started
            print(f"overview rollup: {path}(full={full}) took {took * 1000:.0f} ms: {done}")
        overview_name = "overview GET / (over the rollup)"
    else:
        names = " or ".join(f"{module}.{name}" for module, name in ROLLUPS)
        print(f"overview rollup: no {names} yet; overview timed without it")
        overview_name = "overview GET / (no rollup yet)"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    client = Client()
    client.force_login(User.objects.get(username=REVIEWER))
    week_sent = Notification.objects.filter(
        first_event_at__gte=timezone.now() - timedelta(days=7), first_event_at__lte=timezone.now()
    ).count()
    shop = Source.objects.get(slug="shop-sender").pk
    team = Team.objects.order_by("name").first()
    views = [
        ("no filter", ""),
        ("kind=delivery_failure", "kind=delivery_failure"),
        ("kind + source", f"kind=delivery_failure&source={shop}"),
        (f"owner={team.name}", f"owner={team.pk}"),
        ("owner=unowned", "owner=unowned"),
        ("text q=invoice", "q=invoice"),
    ]
    baseline = Page(
        "baseline: GET /healthz?part=database (middleware + SELECT 1)",
        "/healthz?part=database",
        contains("ok"),
    )
    pages = [
        baseline,
        Page(overview_name, "/", overview_check(week_sent)),
        *queue_pages(client, views),
        *exception_pages(),
        *lookup_pages(count),
    ]
    print(f"timing {len(pages)} pages, {args.runs} runs each after 2 warm-ups...", flush=True)
    for page in pages:
        page.time(client, args.runs)
        page.profile(client)

    print(
        f"\n{'page':<62} {'median':>8} {'max':>8} {'×base':>6} {'queries':>7} {'SQL':>8}  verdict"
    )
    for page in pages:
        if page is baseline:
            verdict = "(baseline)"
        else:
            verdict = "within" if page.median < TARGET_MS else "OVER"
            verdict += f" {TARGET_MS} ms"
            if page.ratio is not None:
                ok = "within" if page.ratio <= DEEP_RATIO else "OVER"
                verdict += f"; deep/first {page.ratio:.2f}× ({ok} {DEEP_RATIO:g}×)"
        print(
            f"{page.name[:62]:<62} {page.median:6.1f}ms {page.worst:6.1f}ms"
            f" {page.median / baseline.median:6.1f} {page.queries:>7} {page.sql_ms:6.1f}ms  {verdict}"
        )
    print(
        f"\n{sum(1 for p in pages[1:] if not p.over)} of {len(pages) - 1} pages within target"
        f" ({TARGET_MS} ms median; deep queue pages within {DEEP_RATIO:g}× their first page)."
        "\n×base: median over the baseline's; queries and SQL: one more request, recorded"
    )
    explained: dict[str, str] = {}
    for page in pages[1:]:
        if page.over:
            explain(page, explained)


if __name__ == "__main__":
    main()
