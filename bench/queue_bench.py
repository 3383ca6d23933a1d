"""Review-queue benchmark: the queue's first page and a deep page, with and without filters.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/queue_bench.py
    .venv/bin/python bench/queue_bench.py --exceptions 5000      # SQLite (temp file)

It creates its own scratch database (nw_queue_bench on PostgreSQL, a temp file on SQLite), seeds
it (COPY on PostgreSQL) with 50k exceptions in realistic shares (most open, most reaching nobody
extra, a long tail of big ones) over 12 sources, 10 teams and 25 people, plus their recent
occurrences (for the this-week column), then times the view server side: Django's test client
through every middleware, session and template, median of --iterations requests each. The deep
page is reached by following "Next" links, as a person would; on PostgreSQL the deep page's plan
is printed. Figures are ratios within one run: these machines drift.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import copy_rows, scratch_database, setup_django  # noqa: E402

SCRATCH = "nw_queue_bench"
DEEP_PAGE = 300
KINDS = [
    ("delivery_failure", 55),
    ("late", 15),
    ("identity", 10),
    ("duplicate_send", 6),
    ("mapping_break", 6),
    ("rejected_webhooks", 4),
    ("silence", 4),
]
STATUSES = [
    ("new", 25),
    ("assigned", 40),
    ("regressed", 5),
    ("resolved", 18),
    ("accepted", 7),
    ("snoozed", 5),
]
PURPOSES = [
    ("order_confirmation", "email"),
    ("order_shipped", "email"),
    ("password_reset", "email"),
    ("login_code", "sms"),
    ("invoice_available", "email"),
    ("payment_receipt", "email"),
    ("renewal_reminder", "email"),
    ("appointment_reminder", "sms"),
    ("ticket_reply", "email"),
    ("out_for_delivery", "push"),
    ("new_message", "in_app"),
]
CATEGORIES = [
    ("invalid_address", "recipient_data"),
    ("mailbox_full", "recipient_data"),
    ("blocked_spam", "our_setup"),
    ("carrier_filtered", "provider"),
    ("landline_or_unreachable", "recipient_data"),
    ("device_token_invalid", "recipient_data"),
    ("provider_outage_transient", "provider"),
    ("rate_limited", "provider"),
    ("auth_or_config_error", "our_setup"),
    ("content_rejected", "our_setup"),
    ("unknown", "unknown"),
]
TEAMS = [
    "Platform",
    "CRM admins",
    "Billing",
    "Support leads",
    "Mobile app",
    "Shop",
    "Marketing ops",
    "Data",
    "Infrastructure",
    "Compliance",
]


GROUP_COLUMNS = (
    "id",
    "kind",
    "title",
    "status",
    "source_id",
    "channel",
    "purpose",
    "reason_category",
    "fix_owner",
    "reason_key",
    "detail",
    "team_id",
    "assignee_id",
    "snoozed_until",
    "snooze_wake_occurrences",
    "occurrences",
    "customers_affected",
    "customers_reached_anyway",
    "customers_not_reached",
    "first_seen",
    "last_seen",
    "resolved_at",
    "merged_into_id",
    "created_at",
    "updated_at",
)
OCCURRENCE_COLUMNS = (
    "id",
    "group_id",
    "notification_id",
    "raw_event_id",
    "subject",
    "customer_id",
    "occurred_at",
)


def weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def seed(
    count: int, now: datetime, seed_value: int = 7, *, sources=None, occurrence=None
) -> dict[str, int]:
    """For other benchmarks (bench/review_bench.py): `sources`, a list of existing source ids
    to use instead of creating 12; `occurrence(row, kind)`, a function returning the occurrence
    row to write instead of `row` (to point it at a notification or raw event)."""
    from django.contrib.auth.models import User

    from notifwatch.accounts.models import Membership, Team
    from notifwatch.failures.models import FailureGroup, Occurrence
    from notifwatch.ingest.actions import save_source

    rng = random.Random(seed_value)
    sources = sources or [
        save_source(slug=f"sender-{n}", kind="json", name=f"Sender {n}").source.pk
        for n in range(12)
    ]
    teams = [team.pk for team in Team.objects.bulk_create(Team(name=n) for n in TEAMS)]
    users = User.objects.bulk_create(
        User(username=f"person{n}", first_name=f"Person {n}", password="!") for n in range(25)
    )
    Membership.objects.bulk_create(Membership(user=u, role="reviewer") for u in users)
    people = [u.pk for u in users]

    groups, occurrences = [], []
    occurrence_id = 0
    stats = dict.fromkeys(("open", "unowned", "not_reached_0", "occurrences"), 0)
    for pk in range(1, count + 1):
        kind = weighted(rng, KINDS)
        status = weighted(rng, STATUSES)
        purpose, channel = rng.choice(PURPOSES)
        category, fix_owner = rng.choice(CATEGORIES) if kind == "delivery_failure" else ("", "")
        # Most exceptions reach everyone in the end, or are not about customers at all; a long
        # tail reaches nobody in hundreds.
        not_reached = 0
        if kind in ("delivery_failure", "late", "duplicate_send"):
            not_reached = min(int(rng.paretovariate(1.1)) - 1, 20_000)
        reached_anyway = rng.randint(0, 3) if not_reached else 0
        extra = min(int(rng.paretovariate(1.3)), 50_000)
        total = not_reached + reached_anyway + extra
        first_seen = now - timedelta(days=rng.uniform(0, 90))
        last_seen = first_seen + (now - first_seen) * rng.random()
        team = assignee = None
        if status != "new" and rng.random() < 0.85:
            team = rng.choice(teams)
            assignee = rng.choice(people) if rng.random() < 0.6 else None
        words = purpose.replace("_", " ").capitalize()
        title = f"{words} {channel}: {category or kind.replace('_', ' ')} #{pk}"
        groups.append(
            (
                pk,
                kind,
                title,
                status,
                rng.choice(sources),
                channel,
                purpose,
                category,
                fix_owner,
                "",
                "{}",
                team,
                assignee,
                now + timedelta(days=7) if status == "snoozed" else None,
                None,
                total,
                not_reached + reached_anyway,
                reached_anyway,
                not_reached,
                first_seen,
                last_seen,
                last_seen if status == "resolved" else None,
                None,
                first_seen,
                last_seen,
            )
        )
        # The this-week column reads the last two weeks of occurrences.
        for n in range(min(total, 12)):
            occurrence_id += 1
            at = max(first_seen, last_seen - timedelta(days=rng.uniform(0, 20)))
            row = (occurrence_id, pk, None, None, f"s{n}", "", at)
            occurrences.append(row if occurrence is None else occurrence(row, kind))
        if status in ("new", "assigned", "regressed"):
            stats["open"] += 1
            stats["unowned"] += team is None and assignee is None
            stats["not_reached_0"] += not_reached == 0
    stats["occurrences"] = occurrence_id
    copy_rows(FailureGroup, GROUP_COLUMNS, groups)
    copy_rows(Occurrence, OCCURRENCE_COLUMNS, occurrences)
    return stats


def deep_url(first_url: str, page: int) -> tuple[str, int]:
    """The address of page `page` (or the last one), found the way the view pages: each page's
    last row becomes the next page's cursor. (Quicker than rendering 300 pages to read links.)
    """
    from django.http import QueryDict

    from notifwatch.failures.filters import IMPACT_KEYS, QueueFilter, make_cursor, page_after
    from notifwatch.failures.models import FailureGroup
    from notifwatch.failures.views import PAGE_SIZE, queue_url, urlencode_with

    params = QueryDict(urlsplit(first_url).query)
    filterset = QueueFilter(params, queryset=FailureGroup.objects.all())
    groups, filters = filterset.qs.only(*IMPACT_KEYS), filterset.querystring()
    cursor, url, reached = None, first_url, 1
    while reached < page:
        rows = list(page_after(groups, cursor)[: PAGE_SIZE + 1])
        if len(rows) <= PAGE_SIZE:
            break
        last = rows[PAGE_SIZE - 1]
        cursor = tuple(getattr(last, key) for key in IMPACT_KEYS)
        reached += 1
        url = queue_url(urlencode_with(filters, after=make_cursor(last, PAGE_SIZE * (reached - 1))))
    return url, reached


def check_deep_page(client, url: str, page: int) -> None:
    """The deep page starts with the row OFFSET would put there (asked once, to check)."""
    from notifwatch.failures.filters import IMPACT_ORDER
    from notifwatch.failures.models import FailureGroup
    from notifwatch.failures.views import PAGE_SIZE

    expected = FailureGroup.objects.open_for_review().order_by(*IMPACT_ORDER)[
        PAGE_SIZE * (page - 1)
    ]
    content = client.get(url).content.decode()
    table = content[content.index('<td class="title">') :]
    first_title = table.split("<strong>", 1)[1].split("</strong>", 1)[0]
    assert first_title == expected.title, (url, first_title, expected.title)


def timed(call, iterations: int) -> float:
    """Median milliseconds of `iterations` calls, after two warm-up calls."""
    for _ in range(2):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(samples)


VIEWS = [
    ("no filter", ""),
    ("kind=delivery_failure", "kind=delivery_failure"),
    ("owner=unowned, channel=email", "owner=unowned&channel=email"),
    ("status=all, fix_owner=provider", "status=all&fix_owner=provider"),
    ("text q=invoice", "q=invoice"),
]


def run(client, iterations: int, deep_urls: dict) -> list[tuple[str, float, float | None, int]]:
    """(name, first-page ms, deep-page ms, deep page number) for each view of the queue."""
    results = []
    for name, query in VIEWS:
        url = "/exceptions/" + (f"?{query}" if query else "")
        first = timed(lambda url=url: client.get(url), iterations)
        deep, page = deep_urls[name]
        deep_ms = timed(lambda deep=deep: client.get(deep), iterations) if page > 1 else None
        results.append((name, first, deep_ms, page))
    htmx = {"HTTP_HX_REQUEST": "true"}
    partial_first = timed(lambda: client.get("/exceptions/", **htmx), iterations)
    deep, page = deep_urls["no filter"]
    partial_deep = timed(lambda: client.get(deep, **htmx), iterations)
    results.append(("no filter, htmx table only", partial_first, partial_deep, page))
    return results


def bulk_confirmation(client, iterations: int) -> float:
    """The bulk confirmation step on every open exception: exact count, digest, sample."""
    data = {"verb": "resolve", "scope": "all", "filters": ""}
    return timed(lambda: client.post("/exceptions/bulk/", data), max(5, iterations // 3))


def report(title: str, results, bulk_ms: float) -> None:
    print(f"\n{title}")
    print(f"  {'view':38} {'first page':>11} {'deep page':>16} {'deep/first':>11}")
    for name, first, deep, page in results:
        deep_text = f"{deep:8.1f} ms (p{page})" if deep is not None else "-"
        ratio = f"{deep / first:10.2f}x" if deep is not None else ""
        print(f"  {name:38} {first:8.1f} ms {deep_text:>16} {ratio:>11}")
    print(f"  {'bulk confirmation, every open one':38} {bulk_ms:8.1f} ms")


def explain_deep_page(page_url: str) -> None:
    """The plan of the deep page's row query (PostgreSQL), to see whether an index is used."""
    from django.http import QueryDict

    from notifwatch.failures.filters import QueueFilter, page_after, parse_cursor
    from notifwatch.failures.models import FailureGroup

    params = QueryDict(urlsplit(page_url).query)
    cursor, _ = parse_cursor(params.get("after", "")) or (None, 0)
    groups = QueueFilter(params, queryset=FailureGroup.objects.all()).qs
    plan = page_after(groups, cursor)[:51].explain(analyze=True)
    lines = plan.splitlines()
    print("  deep page plan: " + " | ".join(line.strip() for line in lines[:4]))
    print("  " + lines[-1].strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exceptions", type=int, default=50_000)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()

    url = scratch_database(os.environ.get("DATABASE_URL"), SCRATCH)
    setup_django(url)
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from notifwatch.accounts.models import Membership

    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    stats = seed(args.exceptions, now)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # What autovacuum does soon after a load like this (and index-only scans need).
            cursor.execute("VACUUM ANALYZE")
    print(
        f"database: {connection.vendor}; seeded {args.exceptions:,} exceptions in "
        f"{time.perf_counter() - started:.0f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in stats.items())
    )

    reviewer = User.objects.create(username="bench-reviewer", password="!")
    Membership.objects.create(user=reviewer, role="reviewer")
    client = Client()
    client.force_login(reviewer)

    deep_urls = {
        name: deep_url("/exceptions/" + (f"?{query}" if query else ""), DEEP_PAGE)
        for name, query in VIEWS
    }
    check_deep_page(client, *deep_urls["no filter"])
    results = run(client, args.iterations, deep_urls)
    # The index this benchmark once proposed (group_open_impact) is migrated now (0003, 0004).
    report("as migrated", results, bulk_confirmation(client, args.iterations))
    if connection.vendor == "postgresql":
        explain_deep_page(deep_urls["no filter"][0])


if __name__ == "__main__":
    main()
