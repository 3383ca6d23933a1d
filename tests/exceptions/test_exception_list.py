from datetime import UTC, datetime, timedelta
from html import unescape
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.failures import views
from notifwatch.failures.actions import assign, merge, set_status, snooze
from notifwatch.failures.detection import refresh_growth
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Kind, Status
from notifwatch.ingest.actions import save_source
from tests.exceptions.data import simple_problem

URL = reverse("exception_list")


def make(
    fingerprint: str,
    hours: int,
    *,
    kind: str = Kind.SILENCE,
    customers: int = 0,
    title: str = "",
    day: int = 14,
    **facts,
) -> FailureGroup:
    """An exception with `hours` occurrences on March `day`, the first `customers` of them for
    a customer nobody reached."""
    problems = [
        simple_problem(
            fingerprint,
            h,
            kind=kind,
            title=title or f"Exception {fingerprint}",
            customer_id=f"cus_{fingerprint}_{h}" if h < customers else "",
            occurred_at=datetime(2025, 3, day, h, tzinfo=UTC),
            **facts,
        )
        for h in range(hours)
    ]
    (pk,) = record_problems(problems, rule="tests")
    return FailureGroup.objects.get(pk=pk)


def get(client, url=URL, *, htmx: bool = False, **params) -> str:
    response = client.get(url, params, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    assert response.status_code == 200
    return response.content.decode()


def titles(content: str) -> list[str]:
    """The exception titles in the order the table shows them."""
    return [chunk.split("<", 1)[0] for chunk in content.split("<strong>Exception ")[1:]]


def next_url(content: str) -> str:
    """The "Next" link's address, as a browser without JavaScript would follow it."""
    if "Next " not in content:
        return ""
    link = content.rsplit('<a href="', 1)[1].split('"', 1)[0]
    return unescape(link)


# --- Order and columns -------------------------------------------------------------------------


def test_it_sorts_by_customers_not_reached_then_occurrences(client, viewer, db):
    make("few-occurrences", 2, customers=2)
    make("many-occurrences", 9)
    make("most-customers", 3, customers=3)
    make("also-two-customers", 5, customers=2)
    client.force_login(viewer)

    assert titles(get(client)) == [
        "most-customers",
        "also-two-customers",
        "few-occurrences",
        "many-occurrences",
    ]


def test_among_equal_customers_it_puts_the_fastest_growing_first(client, viewer, db):
    """Growth is the occurrences of the last 7 days: counted as an exception grows, and
    recounted by every detection pass as the days pass."""
    now = timezone.now()
    old = [
        simple_problem(
            "long-quiet",
            h,
            title="Exception long-quiet",
            occurred_at=now - timedelta(days=20, hours=h),
        )
        for h in range(12)
    ]
    fresh = [
        simple_problem(
            "growing", h, title="Exception growing", occurred_at=now - timedelta(hours=h)
        )
        for h in range(4)
    ]
    record_problems(old + fresh, rule="tests")

    # Counted as it grows...
    assert refresh_growth(now) == 0
    client.force_login(viewer)
    assert titles(get(client)) == ["growing", "long-quiet"]
    assert FailureGroup.objects.get(title__endswith="growing").recent_occurrences == 4

    # ...and a week on, "growing" has gone quiet too: back to total occurrences.
    assert refresh_growth(now + timedelta(days=8)) == 1
    assert titles(get(client)) == ["long-quiet", "growing"]
    assert refresh_growth(now + timedelta(days=8)) == 0  # nothing moved, nothing written


def test_it_breaks_ties_by_the_newest_id(client, viewer, db):
    first, second = make("first", 2), make("second", 2)
    client.force_login(viewer)
    assert titles(get(client)) == ["second", "first"]
    assert second.pk > first.pk


def test_it_shows_the_columns_a_reviewer_needs(
    client, viewer, json_source, teams, reviewer, bounced
):
    assign(bounced, team=teams["CRM admins"], assignee=reviewer, actor=reviewer)
    client.force_login(viewer)

    content = get(client)

    assert '<span class="badge kind">Delivery failure</span>' in content
    assert f'<a href="{reverse("exception_detail", args=[bounced.pk])}">' in content
    assert "Billing sender · Email · Order confirmation" in content
    assert "Invalid address · fix: Recipient data (CRM, billing, support)" in content
    assert '<span class="badge x-assigned">Assigned</span>' in content
    assert "<div>CRM admins</div>" in content and "rita" in content
    # 3 customers affected, 2 of them not reached by any channel; 3 occurrences.
    assert '<strong class="bad-text">2</strong><div class="small muted">of 3 affected' in content
    assert '<td class="num">3<div' in content
    assert "Mar 14, 10:10<div" in content and "since Mar 14" in content


def test_it_shows_this_week_against_last_week(client, viewer, db):
    now = timezone.now()
    problems = [
        simple_problem("grows", n, occurred_at=now - timedelta(days=days), subject=f"s{n}")
        for n, days in enumerate([1, 2, 3, 9])
    ]
    record_problems(problems, rule="tests")
    client.force_login(viewer)

    content = get(client)

    assert "3 this week" in content
    assert 'aria-label="3 in the last 7 days, 1 in the 7 before: growing">↑<' in content


def test_it_counts_open_new_unowned_and_regressed(client, viewer, teams):
    make("a", 1)
    make("b", 1)
    owned = make("c", 1, kind=Kind.LATE)
    assign(owned, team=teams["Billing"])
    set_status(make("d", 1), Status.REGRESSED)
    set_status(make("e", 1), Status.RESOLVED)
    client.force_login(viewer)

    content = get(client)

    assert '<div class="stat-n">4</div>\n    <div class="stat-l">open' in content
    assert '<div class="stat-n">2</div>\n    <div class="stat-l">new' in content
    assert '<div class="stat-n">3</div>\n    <div class="stat-l">unowned' in content
    assert '<div class="stat-n">1</div>\n    <div class="stat-l">regressed' in content
    assert content.count('<span class="badge unowned">Unowned</span>') == 3
    assert "4 matching exceptions, biggest impact first" in content


def test_it_says_when_every_exception_has_an_owner(client, viewer, teams):
    assign(make("a", 1), team=teams["Billing"])
    client.force_login(viewer)
    assert "every open exception has an owner" in get(client)


def test_it_shows_status_as_text_and_colour(client, viewer, db):
    set_status(make("r", 1), Status.REGRESSED)
    client.force_login(viewer)
    assert '<span class="badge x-regressed">Regressed</span>' in get(client)


def test_it_shows_dates_in_the_active_time_zone(client, viewer, settings):
    # The server's zone here; the accounts middleware activates the user's own the same way.
    settings.TIME_ZONE = "America/New_York"
    make("a", 1)  # last seen 2025-03-14 00:00 UTC
    client.force_login(viewer)
    assert "Mar 13, 20:00" in get(client)


# --- Filters ------------------------------------------------------------------------------------


@pytest.fixture
def varied(json_source, teams, reviewer, viewer):
    """Three exceptions that differ in every way the queue filters on."""
    other = save_source(slug="shop", kind="json", name="Shop sender").source
    a = make(
        "a",
        3,
        kind=Kind.DELIVERY_FAILURE,
        title="Exception a: order confirmation bounced",
        day=14,
        source_id=json_source.pk,
        channel="email",
        reason_category="invalid_address",
        fix_owner="recipient_data",
    )
    assign(a, team=teams["Billing"], assignee=reviewer)
    make(
        "b",
        2,
        kind=Kind.LATE,
        title="Exception b: password reset late",
        day=10,
        source_id=other.pk,
        channel="sms",
    )
    c = make(
        "c",
        1,
        kind=Kind.DELIVERY_FAILURE,
        title="Exception c: shipped push failed",
        day=20,
        source_id=json_source.pk,
        channel="push",
        reason_category="device_token_invalid",
        fix_owner="our_setup",
    )
    assign(c, team=teams["CRM admins"], assignee=viewer)
    return SimpleNamespace(
        billing=json_source, shop=other, teams=teams, rita=reviewer, victor=viewer
    )


def shown(client, **params) -> set[str]:
    return {title.split(":", 1)[0] for title in titles(get(client, **params))}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (lambda v: {"source": v.billing.pk}, {"a", "c"}),
        (lambda v: {"source": v.shop.pk}, {"b"}),
        (lambda v: {"channel": "sms"}, {"b"}),
        (lambda v: {"kind": "late"}, {"b"}),
        (lambda v: {"kind": "delivery_failure"}, {"a", "c"}),
        (lambda v: {"category": "invalid_address"}, {"a"}),
        (lambda v: {"fix_owner": "our_setup"}, {"c"}),
        (lambda v: {"owner": "unowned"}, {"b"}),
        (lambda v: {"owner": v.teams["CRM admins"].pk}, {"c"}),
        (lambda v: {"assignee": v.rita.pk}, {"a"}),
        (lambda v: {"seen_from": "2025-03-14"}, {"a", "c"}),
        (lambda v: {"seen_to": "2025-03-14"}, {"a", "b"}),
        (lambda v: {"seen_from": "2025-03-14", "seen_to": "2025-03-14"}, {"a"}),
        (lambda v: {"q": "BOUNCED"}, {"a"}),
        (lambda v: {"q": "late"}, {"b"}),
        # The text is text, not a pattern.
        (lambda v: {"q": "_"}, set()),
        (lambda v: {"q": "%"}, set()),
    ],
    ids=lambda p: "",
)
def test_it_filters_on_each_field(client, viewer, varied, params, expected):
    client.force_login(viewer)
    assert shown(client, **params(varied)) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (lambda v: {"kind": "delivery_failure", "channel": "email"}, {"a"}),
        (lambda v: {"source": v.billing.pk, "fix_owner": "our_setup", "q": "push"}, {"c"}),
        (lambda v: {"source": v.billing.pk, "owner": "unowned"}, set()),
        (lambda v: {"kind": "delivery_failure", "seen_from": "2025-03-15"}, {"c"}),
        (lambda v: {"assignee": v.victor.pk, "owner": v.teams["CRM admins"].pk}, {"c"}),
    ],
)
def test_it_combines_filters(client, viewer, varied, params, expected):
    client.force_login(viewer)
    assert shown(client, **params(varied)) == expected


def test_it_reads_the_date_range_in_the_active_time_zone(client, viewer, settings):
    settings.TIME_ZONE = "America/New_York"
    make("late-evening", 1, day=14)  # 2025-03-14 00:00 UTC is still the 13th in New York
    client.force_login(viewer)
    assert titles(get(client, seen_from="2025-03-13", seen_to="2025-03-13")) == ["late-evening"]
    assert titles(get(client, seen_from="2025-03-14")) == []


def test_it_shows_only_open_exceptions_by_default(client, viewer, db):
    make("new", 1)
    set_status(make("regressed", 1), Status.REGRESSED)
    set_status(make("resolved", 1), Status.RESOLVED)
    set_status(make("accepted", 1), Status.ACCEPTED)
    snooze(make("snoozed", 1), until=timezone.now() + timedelta(days=3))
    client.force_login(viewer)

    assert sorted(titles(get(client))) == ["new", "regressed"]
    assert titles(get(client, status="snoozed")) == ["snoozed"]
    assert titles(get(client, status="resolved")) == ["resolved"]
    assert titles(get(client, status="accepted")) == ["accepted"]
    assert len(titles(get(client, status="all"))) == 5


def test_it_shows_merged_exceptions_only_under_all(client, viewer, db):
    kept, gone = make("kept", 2), make("gone", 1)
    merge([gone], kept)
    client.force_login(viewer)
    assert titles(get(client, status="resolved")) == []
    content = get(client, status="all")
    assert sorted(titles(content)) == ["gone", "kept"]
    assert f'Merged into <a href="{reverse("exception_detail", args=[kept.pk])}">' in content


def test_it_keeps_links_written_for_the_first_list_working(client, viewer, teams):
    make("unowned", 1)
    assign(make("billing", 1), team=teams["Billing"])
    client.force_login(viewer)
    assert titles(get(client, unowned="on")) == ["unowned"]
    assert titles(get(client, team=teams["Billing"].pk)) == ["billing"]


def test_it_explains_an_unknown_filter_value_and_ignores_it(client, viewer, db):
    make("a", 1)
    set_status(make("done", 1), Status.RESOLVED)
    client.force_login(viewer)
    content = get(client, owner="999999", kind="nonsense", status="nonsense")
    assert "Select a valid choice. 999999 is not one of the available choices." in content
    assert "Select a valid choice. nonsense is not one of the available choices." in content
    # An unreadable status falls back to the open queue, never to everything.
    assert titles(content) == ["a"]
    # And a bulk change on a filter that did not validate is not offered.
    assert "Apply to all" not in content


def test_it_keeps_the_filters_in_the_form(client, viewer, varied):
    client.force_login(viewer)
    content = get(client, channel="sms", q="reset")
    assert '<option value="sms" selected>SMS</option>' in content
    assert 'name="q" value="reset"' in content


def test_it_says_when_filters_match_nothing(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    assert "No exceptions match these filters." in get(client, kind="late")


# --- Empty queue --------------------------------------------------------------------------------


def test_it_says_there_are_no_open_exceptions(client, viewer, db):
    set_status(make("done", 1), Status.RESOLVED)
    client.force_login(viewer)
    content = get(client)
    assert "No open exceptions — nothing needs a decision right now." in content


def test_it_names_the_day_of_the_last_review_when_the_queue_is_empty(client, viewer, reviewer):
    review = apps.get_model("failures", "Review")
    review.objects.create(
        week_start=datetime(2025, 3, 10).date(),
        started_by=reviewer,
        started_at=datetime(2025, 3, 10, 9, tzinfo=UTC),
        completed_by=reviewer,
        completed_at=datetime(2025, 3, 10, 9, 14, tzinfo=UTC),
    )
    client.force_login(viewer)
    assert "No open exceptions — the last review was on Monday, March 10." in get(client)


def test_it_counts_the_default_filters_as_no_filter(client, viewer, db):
    client.force_login(viewer)
    content = get(client, kind="", status="open", owner="")
    assert "No open exceptions — nothing needs a decision right now." in content


# --- Paging -------------------------------------------------------------------------------------


def rows(n: int, **numbers) -> list[FailureGroup]:
    """Many exceptions at once, with the sort values given (ties on purpose)."""
    now = timezone.now()
    return FailureGroup.objects.bulk_create(
        [
            FailureGroup(
                kind=Kind.SILENCE,
                title=f"Exception r{i}",
                first_seen=now,
                last_seen=now,
                customers_not_reached=numbers.get("not_reached", lambda i: i % 3)(i),
                occurrences=numbers.get("occurrences", lambda i: i % 2)(i),
            )
            for i in range(n)
        ]
    )


def walk(client, params=None) -> tuple[list[str], list[str]]:
    """Follow "Next" to the end; return the titles in order and each page's content."""
    pages = [get(client, **(params or {}))]
    while url := next_url(pages[-1]):
        pages.append(get(client, url))
    return [title for page in pages for title in titles(page)], pages


def test_it_pages_in_impact_order_without_repeats_or_skips(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    rows(23)
    client.force_login(viewer)

    seen, pages = walk(client)

    expected = [
        g.title.removeprefix("Exception ")
        for g in FailureGroup.objects.order_by(
            "-customers_not_reached", "-recent_occurrences", "-occurrences", "-id"
        )
    ]
    assert seen == expected
    assert len(pages) == 6
    assert "← First" not in pages[0] and "← First" in pages[-1]
    assert "Exceptions 21–23, biggest impact first" in pages[-1]
    assert "Next 4 →" not in pages[-1]


def test_it_pages_deep_into_a_long_tie(client, viewer, monkeypatch, db):
    """Most exceptions reach nobody: a deep page sits inside one long run of equal values."""
    monkeypatch.setattr(views, "PAGE_SIZE", 5)
    rows(60, not_reached=lambda i: 0, occurrences=lambda i: 1)
    client.force_login(viewer)

    seen, pages = walk(client)

    assert len(seen) == len(set(seen)) == 60
    assert len(pages) == 12
    assert "Exceptions 51–55" in pages[10]


def test_it_pages_by_keyset_and_counts_only_on_the_first_page(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    rows(5)
    client.force_login(viewer)

    with CaptureQueriesContext(connection) as first_queries:
        first = get(client, htmx=True)
    with CaptureQueriesContext(connection) as deep_queries:
        deep = get(client, next_url(first), htmx=True)

    first_sql = " ".join(q["sql"] for q in first_queries.captured_queries)
    deep_sql = " ".join(q["sql"] for q in deep_queries.captured_queries)
    assert "OFFSET" not in (first_sql + deep_sql).upper()
    # One row-value comparison the planner can seek an index with, not an OR of ranges.
    assert (
        '("failures_failuregroup"."customers_not_reached", '
        '"failures_failuregroup"."recent_occurrences", '
        '"failures_failuregroup"."occurrences", "failures_failuregroup"."id") <'
    ) in deep_sql
    # The first page counts the matches (up to a cap); later pages do not count at all.
    assert "COUNT(*)" in first_sql and "LIMIT 1001" in first_sql
    assert "COUNT(*)" not in deep_sql
    assert "5 matching exceptions, biggest impact first · showing 1–2" in first
    assert "Exceptions 3–4, biggest impact first" in deep


def test_it_keeps_the_filters_when_paging(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    make("late-1", 2, kind=Kind.LATE)
    make("late-2", 1, kind=Kind.LATE)
    make("silence", 3)
    client.force_login(viewer)
    link = next_url(get(client, kind="late"))
    assert "kind=late" in link
    assert titles(get(client, link)) == ["late-2"]


def test_it_pushes_the_page_address_when_paging_with_htmx(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    make("a", 1)
    make("b", 1)
    client.force_login(viewer)
    content = get(client, kind="silence")
    link = next_url(content)
    assert (
        f'<a href="{link.replace("&", "&amp;")}" hx-get="{link.replace("&", "&amp;")}" '
        'hx-target="#queue" hx-swap="outerHTML" hx-push-url="true">Next 1 →</a>'
    ) in content
    page_two = get(client, link)
    assert 'hx-push-url="true">← First</a>' in page_two
    assert '<a href="/exceptions/?kind=silence&amp;status=open"' in page_two


def test_it_starts_over_on_a_cursor_that_makes_no_sense(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    for cursor in ("nonsense", "1.2", "-1.0.5.0", "1.x.3"):
        content = get(client, after=cursor)
        assert titles(content) == ["a"]


def test_it_says_when_a_page_is_past_the_end(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    assert "No more exceptions." in get(client, after="0.0.0.1.50")


# --- htmx and no JavaScript ---------------------------------------------------------------------


def test_it_sends_only_the_table_to_htmx(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    response = client.get(URL, {"kind": "silence", "q": "", "owner": ""}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="queue"')
    # The address bar gets the filters without the form's empty fields.
    assert response["HX-Push-Url"] == "/exceptions/?kind=silence&status=open"
    assert "<html" not in content and 'class="filters' not in content
    assert titles(content) == ["a"]
    assert "HX-Request" in response["Vary"]


def test_it_sends_the_whole_page_to_restore_history(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    response = client.get(URL, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.content.decode()


def test_it_filters_without_javascript_and_with_htmx(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    content = get(client)
    assert '<form class="filters queue-filters" method="get" action="/exceptions/"' in content
    assert (
        'hx-get="/exceptions/" hx-target="#queue" hx-swap="outerHTML" hx-push-url="true"' in content
    )
    assert '<button type="submit" class="primary">Filter</button>' in content


def test_it_masks_addresses_in_titles_without_personal_data(client, viewer, reviewer, db):
    make("x", 1, title="Exception for sam@example.com")
    client.force_login(viewer)
    content = get(client)
    assert "sam@example.com" not in content
    assert "Exception for s•••@example.com" in content
    client.force_login(reviewer)
    assert "Exception for sam@example.com" in get(client)


def test_it_offers_decisions_only_to_reviewers_and_admins(client, viewer, auditor, reviewer):
    make("a", 1)
    for user in (viewer, auditor):
        client.force_login(user)
        content = get(client)
        assert 'id="bulk"' not in content and 'name="ids"' not in content
        assert "exception_action" not in content and "/action/" not in content
    client.force_login(reviewer)
    content = get(client)
    assert '<form id="bulk" class="bulk-bar" method="post" action="/exceptions/bulk/"' in content
    assert 'type="checkbox" name="ids"' in content and 'form="bulk"' in content
    assert "Apply to all 1 matching…" in content
    assert "✓ Resolve" in content and "Snooze until" in content


@pytest.mark.parametrize("role", ["admin_user", "reviewer", "viewer", "auditor"])
def test_it_lets_every_read_role_in(client, request, role, db):
    client.force_login(request.getfixturevalue(role))
    assert client.get(URL).status_code == 200


def test_it_refuses_a_user_without_a_role(client, no_role_user):
    client.force_login(no_role_user)
    assert client.get(URL).status_code == 403


def test_it_sends_anonymous_users_to_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- Inline decisions on a row ------------------------------------------------------------------


def act(client, group: FailureGroup, data: dict, **headers):
    url = reverse("exception_action", args=[group.pk])
    return client.post(
        url, {"from": "queue", "back": "kind=silence&after=0.1.9.50", **data}, **headers
    )


def test_it_resolves_from_a_row_with_htmx(client, reviewer, db):
    group = make("a", 1)
    client.force_login(reviewer)

    response = act(
        client, group, {"action": "status", "status": "resolved"}, HTTP_HX_REQUEST="true"
    )

    content = response.content.decode()
    assert content.startswith(f'<tr id="exception-{group.pk}" class="row-success">')
    assert '<span class="badge x-resolved">Resolved</span>' in content
    assert "Marked resolved." in content
    # The row's forms still know where the person was.
    assert 'name="back" value="kind=silence&amp;after=0.1.9.50"' in content
    group.refresh_from_db()
    assert group.status == Status.RESOLVED
    entry = GroupHistory.objects.filter(group=group).last()
    assert (entry.kind, entry.actor) == (HistoryKind.STATUS, reviewer)
    assert AuditEntry.objects.filter(action="exception.status", actor=reviewer).count() == 1


def test_it_goes_back_to_the_same_queue_page_without_javascript(client, reviewer, db):
    group = make("a", 1)
    client.force_login(reviewer)

    response = act(client, group, {"action": "status", "status": "accepted"})

    assert response.status_code == 302
    assert response["Location"] == "/exceptions/?kind=silence&after=0.1.9.50"
    content = client.get(URL).content.decode()
    assert f"#{group.pk}: Accepted as expected: it leaves the open list." in content


def test_it_never_sends_a_row_action_off_site(client, reviewer, db):
    group = make("a", 1)
    client.force_login(reviewer)
    data = {"action": "status", "status": "accepted", "back": "//evil.example/"}
    response = client.post(reverse("exception_action", args=[group.pk]), {"from": "queue", **data})
    assert response["Location"].startswith("/exceptions/?")


def test_it_assigns_a_team_and_a_person_from_a_row(client, reviewer, viewer, teams):
    group = make("a", 1)
    client.force_login(reviewer)

    response = act(
        client,
        group,
        {"action": "assign", "team": teams["Billing"].pk, "assignee": viewer.pk},
        HTTP_HX_REQUEST="true",
    )

    content = response.content.decode()
    assert "Owner: Billing (team) · victor (person)." in content
    assert "<div>Billing</div>" in content
    group.refresh_from_db()
    assert (group.team, group.assignee, group.status) == (teams["Billing"], viewer, Status.ASSIGNED)


def test_it_snoozes_from_a_row(client, reviewer, db):
    group = make("a", 1)
    client.force_login(reviewer)
    until = timezone.localdate() + timedelta(days=5)

    response = act(
        client, group, {"action": "snooze", "until": until.isoformat()}, HTTP_HX_REQUEST="true"
    )

    group.refresh_from_db()
    assert group.status == Status.SNOOZED
    assert timezone.localtime(group.snoozed_until).date() == until
    assert f"until {until:%b} {until.day}" in response.content.decode()


def test_it_explains_a_refused_row_action_in_the_row(client, reviewer, db):
    group = make("a", 1)
    client.force_login(reviewer)

    response = act(
        client, group, {"action": "assign", "team": "", "assignee": ""}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert content.startswith(f'<tr id="exception-{group.pk}" class="row-error">')
    assert "Choose a team, a person, or both." in content

    past = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = act(client, group, {"action": "snooze", "until": past})
    assert response.status_code == 302
    assert "Pick a date after today." in client.get(URL).content.decode()
    group.refresh_from_db()
    assert group.status == Status.NEW


def test_it_offers_the_row_controls_without_javascript(client, reviewer, teams):
    group = make("a", 1)
    client.force_login(reviewer)
    content = get(client)
    action = reverse("exception_action", args=[group.pk])
    assert f'<form class="row-status" method="post" action="{action}"' in content
    assert f'hx-post="{action}" hx-target="#exception-{group.pk}" hx-swap="outerHTML"' in content
    assert f'<option value="{teams["Billing"].pk}">Billing</option>' in content
    assert '<input type="date" name="until"' in content


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_it_refuses_a_forged_row_action(client, request, role, db):
    group = make("a", 1)
    client.force_login(request.getfixturevalue(role))
    response = act(client, group, {"action": "status", "status": "resolved"})
    assert response.status_code == 403
    group.refresh_from_db()
    assert group.status == Status.NEW


def test_it_counts_matches_only_up_to_a_cap(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "MATCH_CAP", 4)
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    rows(6)
    client.force_login(viewer)
    assert "4+ matching exceptions, biggest impact first · showing 1–2" in get(
        client, kind="silence"
    )
    # The summary above the queue already counted the open ones exactly.
    assert "6 matching exceptions, biggest impact first" in get(client)
    # And a filter that fits on one page needs no count.
    monkeypatch.setattr(views, "PAGE_SIZE", 50)
    with CaptureQueriesContext(connection) as queries:
        content = get(client, kind="silence", htmx=True)
    assert "6 matching exceptions, biggest impact first" in content
    assert not any("COUNT(*)" in q["sql"] for q in queries.captured_queries)
