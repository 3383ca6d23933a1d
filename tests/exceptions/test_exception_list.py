from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.failures import views
from notifwatch.failures.actions import assign, merge, set_status, snooze
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind, Status
from tests.exceptions.data import simple_problem

URL = reverse("exception_list")


def make(fingerprint: str, hours: int, *, kind: str = Kind.SILENCE, customers: int = 0, title=""):
    """An exception with `hours` occurrences, the first `customers` of them for a customer."""
    problems = [
        simple_problem(
            fingerprint,
            h,
            kind=kind,
            title=title or f"Exception {fingerprint}",
            customer_id=f"cus_{fingerprint}_{h}" if h < customers else "",
        )
        for h in range(hours)
    ]
    (pk,) = record_problems(problems, rule="tests")
    return FailureGroup.objects.get(pk=pk)


def get(client, url=URL, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def titles(content: str) -> list[str]:
    """The exception titles in the order the table shows them."""
    found = []
    for chunk in content.split("<strong>Exception ")[1:]:
        found.append(chunk.split("<", 1)[0])
    return found


def test_it_sorts_by_customers_not_reached_then_occurrences(client, viewer, db):
    make("few-occurrences", 2, customers=2)
    make("many-occurrences", 9)
    make("most-customers", 3, customers=3)
    make("also-two-customers", 5, customers=2)
    client.force_login(viewer)

    content = get(client)

    assert titles(content) == [
        "most-customers",
        "also-two-customers",
        "few-occurrences",
        "many-occurrences",
    ]


def test_it_shows_the_columns_a_reviewer_needs(
    client, viewer, json_source, teams, reviewer, bounced
):
    assign(bounced, team=teams["CRM admins"], assignee=reviewer, actor=reviewer)
    client.force_login(viewer)

    content = get(client)

    assert '<span class="badge kind">Delivery failure</span>' in content
    assert f'<a href="{reverse("exception_detail", args=[bounced.pk])}">' in content
    assert "<div>Billing sender</div>" in content
    assert 'Email · <span title="order_confirmation">Order confirmation</span>' in content
    assert '<span class="badge x-assigned">Assigned</span>' in content
    assert "CRM admins" in content and "rita" in content
    # 3 occurrences; 3 customers affected, 2 of them not reached.
    assert '<td class="num">3</td>' in content
    assert '3 / <strong class="bad-text">2</strong>' in content
    assert "Mar 14, 10:00<br>Mar 14, 10:10" in content


def test_it_counts_open_exceptions_by_kind_and_the_unowned(client, viewer, teams):
    make("a", 1)
    make("b", 1)
    make("c", 1, kind=Kind.LATE)
    owned = make("d", 1, kind=Kind.LATE)
    assign(owned, team=teams["Billing"])
    set_status(make("e", 1), Status.RESOLVED)
    client.force_login(viewer)

    content = get(client)

    assert '<div class="stat-n">4</div>' in content
    assert (
        '<div class="stat-n">3</div>\n    <div class="stat-l">unowned — every exception needs one owner'
        in content
    )
    assert 'Silence <span class="n">2</span>' in content
    assert 'Late <span class="n">2</span>' in content
    assert 'Mapping break <span class="n">0</span>' in content
    assert content.count('<span class="badge unowned">Unowned</span>') == 3


def test_it_says_when_every_exception_has_an_owner(client, viewer, teams):
    assign(make("a", 1), team=teams["Billing"])
    client.force_login(viewer)
    assert "every open exception has an owner" in get(client)


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


def test_it_filters_by_kind_team_and_unowned(client, viewer, teams):
    make("late-unowned", 1, kind=Kind.LATE)
    assign(make("late-billing", 1, kind=Kind.LATE), team=teams["Billing"])
    assign(make("silence-crm", 1), team=teams["CRM admins"])
    client.force_login(viewer)

    assert sorted(titles(get(client, kind="late"))) == ["late-billing", "late-unowned"]
    assert titles(get(client, team=teams["Billing"].pk)) == ["late-billing"]
    assert titles(get(client, unowned="on")) == ["late-unowned"]
    assert titles(get(client, kind="silence", unowned="on")) == []


def test_it_explains_an_unknown_filter_value_and_ignores_it(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    content = get(client, team="999999", kind="nonsense")
    assert "Unknown team: pick one from the list." in content
    assert "Select a valid choice. nonsense is not one of the available choices." in content
    assert titles(content) == ["a"]


def test_it_pages_in_impact_order_without_repeats(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for n in range(5):
        make(f"g{n}", 1 + n % 3)
    client.force_login(viewer)

    seen, content, params = [], get(client), {}
    while True:
        seen += titles(content)
        if "Next 2 →" not in content:
            break
        cursor = content.split("after=", 1)[1].split('"', 1)[0]
        params = {"after": cursor}
        content = get(client, **params)

    expected = [
        g.title.removeprefix("Exception ")
        for g in FailureGroup.objects.order_by("-customers_not_reached", "-occurrences", "-id")
    ]
    assert seen == expected
    assert "← Biggest impact" in content


def test_it_keeps_the_filters_when_paging(client, viewer, monkeypatch, db):
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    make("late-1", 2, kind=Kind.LATE)
    make("late-2", 1, kind=Kind.LATE)
    make("silence", 3)
    client.force_login(viewer)
    content = get(client, kind="late")
    next_link = content.split('<a href="?', 2)[-1].split('"', 1)[0].replace("&amp;", "&")
    assert "kind=late" in next_link
    assert titles(get(client, URL + "?" + next_link)) == ["late-2"]


def test_it_says_there_are_no_open_exceptions(client, viewer, db):
    set_status(make("done", 1), Status.RESOLVED)
    client.force_login(viewer)
    content = get(client)
    assert "No open exceptions — nothing needs a decision right now." in content
    assert "0 unowned" not in content


def test_it_counts_the_default_filters_as_no_filter(client, viewer, db):
    client.force_login(viewer)
    content = get(client, kind="", status="open", team="")
    assert "No open exceptions — nothing needs a decision right now." in content
    assert ">Clear</a>" not in content


def test_it_says_when_filters_match_nothing(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    assert "No exceptions match these filters." in get(client, kind="late")


def test_it_sends_only_the_table_to_htmx(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    response = client.get(URL, {"kind": "silence"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="results"')
    assert "<html" not in content
    assert titles(content) == ["a"]


def test_it_masks_addresses_in_titles_without_personal_data(client, viewer, reviewer, db):
    make("x", 1, title="Exception for sam@example.com")
    client.force_login(viewer)
    content = get(client)
    assert "sam@example.com" not in content
    assert "Exception for s•••@example.com" in content
    client.force_login(reviewer)
    assert "Exception for sam@example.com" in get(client)


def test_it_filters_without_javascript(client, viewer, db):
    make("a", 1)
    client.force_login(viewer)
    content = get(client)
    assert '<form class="filters" method="get" action="/exceptions/"' in content
    assert '<button type="submit" class="primary">Filter</button>' in content


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


def test_it_links_to_the_list_from_the_header(client, viewer, db):
    client.force_login(viewer)
    content = get(client)
    assert '<a href="/exceptions/" class="active" aria-current="page">Exceptions</a>' in content
