from datetime import UTC, datetime

import pytest
from django.urls import reverse

from notifwatch.accounts.models import Team
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign, set_status
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind, Status
from tests.exceptions.data import simple_problem

LIST = reverse("api_exceptions")


def make(fingerprint: str, hours: int, *, kind: str = Kind.SILENCE, customers: int = 0, title=""):
    """An exception with `hours` occurrences, the first `customers` for customers not reached."""
    problems = [
        simple_problem(
            fingerprint,
            h,
            kind=kind,
            title=title or f"Exception {fingerprint}",
            customer_id=f"cus_{fingerprint}_{h}" if h < customers else "",
            occurred_at=datetime(2025, 3, 14, h, tzinfo=UTC),
        )
        for h in range(hours)
    ]
    (pk,) = record_problems(problems, rule="tests")
    return FailureGroup.objects.get(pk=pk)


def ids(answer: dict) -> list[int]:
    return [item["id"] for item in answer["items"]]


def test_it_lists_open_exceptions_in_impact_order(api_get, viewer):
    small = make("small", 2)
    big = make("big", 5, kind=Kind.DELIVERY_FAILURE, customers=3)
    middle = make("middle", 4, kind=Kind.DELIVERY_FAILURE, customers=1)

    answer = api_get(LIST, viewer)

    assert ids(answer) == [big.pk, middle.pk, small.pk]
    assert "next" not in answer


def test_it_says_the_reason_impact_and_owner_of_each(api_get, viewer, reviewer):
    group = make("owned", 3, kind=Kind.DELIVERY_FAILURE, customers=2)
    team = Team.objects.create(name="Billing")
    assign(group, team=team, assignee=reviewer, actor=reviewer)

    (item,) = api_get(LIST, viewer)["items"]

    assert item["kind"] == "delivery_failure"
    assert item["status"] == "assigned"
    assert item["reason"] and item["suggested_action"]
    assert item["impact"] == {
        "customers_affected": 2,
        "customers_not_reached": 2,
        "customers_reached_anyway": 0,
        "occurrences": 3,
        "occurrences_last_7_days": group.recent_occurrences,
    }
    assert item["owner"]["team"] == {"id": team.pk, "name": "Billing"}
    assert item["owner"]["assignee"]["id"] == reviewer.pk
    assert item["first_seen"] == "2025-03-14T00:00:00Z"
    assert item["last_seen"] == "2025-03-14T02:00:00Z"
    assert item["url"].endswith(reverse("exception_detail", args=[group.pk]))


def test_it_pages_every_exception_once_and_ends_without_next(api_get, client, bearer, viewer):
    # Ties in every impact figure: only the id keeps the pages apart.
    made = [make(f"tie{n}", 2).pk for n in range(5)]
    made += [make(f"big{n}", 3 + n, customers=1 + n).pk for n in range(3)]

    headers = bearer(viewer)
    seen, pages = [], 0
    url, params = LIST, {"limit": 3}
    while url:
        answer = client.get(url, params, **headers).json()
        seen += ids(answer)
        pages += 1
        url, params = answer.get("next"), {}

    assert pages == 3
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    assert seen == ids(api_get(LIST, viewer, limit=200))


def test_it_keeps_the_filters_on_the_next_page(client, bearer, viewer):
    for n in range(3):
        make(f"late{n}", 2, kind=Kind.LATE)
    make("silent", 9)
    headers = bearer(viewer)

    first = client.get(LIST, {"kind": "late", "limit": 2}, **headers).json()
    second = client.get(first["next"], **headers).json()

    assert "kind=late" in first["next"]
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert {item["kind"] for item in first["items"] + second["items"]} == {"late"}
    assert "next" not in second


def test_it_filters_as_the_queue_does(api_get, viewer):
    late = make("late", 2, kind=Kind.LATE)
    silent = make("silent", 3)
    resolved = make("resolved", 4, kind=Kind.LATE)
    set_status(resolved, Status.RESOLVED)

    assert ids(api_get(LIST, viewer, kind="late")) == [late.pk]
    assert silent.pk not in ids(api_get(LIST, viewer, kind="late"))
    assert ids(api_get(LIST, viewer, status="resolved")) == [resolved.pk]
    assert ids(api_get(LIST, viewer, q="silent")) == [silent.pk]


def test_it_refuses_a_filter_or_cursor_it_cannot_read(api_get, viewer):
    make("one", 2)

    bad_kind = api_get(LIST, viewer, expect=400, kind="no-such-kind")
    bad_cursor = api_get(LIST, viewer, expect=400, after="not-a-cursor")
    bad_limit = api_get(LIST, viewer, expect=400, limit="5000")

    assert "kind" in bad_kind["errors"]
    assert "cursor" in bad_cursor["error"]
    assert "limit" in bad_limit["error"]


@pytest.mark.parametrize(("role", "masked"), [("viewer", True), ("reviewer", False)])
def test_it_masks_titles_for_roles_without_personal_data(api_get, request, role, masked):
    user = request.getfixturevalue(role)
    group = make("shared", 2, kind=Kind.IDENTITY, title="One address pat.lee@example.com shared")

    listed = api_get(LIST, user)["items"][0]["title"]
    detail = api_get(reverse("api_exception", args=[group.pk]), user)["title"]

    expected = "p•••@example.com" if masked else "pat.lee@example.com"
    assert expected in listed and expected in detail
    assert ("pat.lee@example.com" in listed) is not masked


def test_it_tells_one_exceptions_history(api_get, viewer, reviewer):
    group = make("story", 3)
    team = Team.objects.create(name="Platform")
    assign(group, team=team, actor=reviewer)
    set_status(group, Status.RESOLVED, actor=reviewer, comment="Fixed the DNS record")

    detail = api_get(reverse("api_exception", args=[group.pk]), viewer)

    kinds = [entry["kind"] for entry in detail["history"]]
    assert kinds[0] == "created" and kinds[-2:] == ["assigned", "status"]
    assigned, resolved = detail["history"][-2:]
    assert assigned["actor"] == "rita"
    assert assigned["new"]["team"] == team.pk
    assert "Platform" in assigned["what"]
    assert resolved["old"]["status"] == "assigned" and resolved["new"]["status"] == "resolved"
    assert resolved["comment"] == "Fixed the DNS record"
    assert detail["history"][0]["system"] is True
    assert detail["status"] == "resolved"


def test_it_shows_sample_notifications_of_an_exception(api_get, viewer, bounced):
    detail = api_get(reverse("api_exception", args=[bounced.pk]), viewer)

    samples = detail["sample_notifications"]
    assert {s["customer_id"] for s in samples} == {"cus_1", "cus_2", "cus_3"}
    assert all(s["final_status"] == "bounced" for s in samples)
    assert all("•••" in s["recipient"] for s in samples)
    assert detail["impact"]["customers_reached_anyway"] == 1


def test_it_answers_404_for_an_unknown_exception(api_get, viewer):
    answer = api_get(reverse("api_exception", args=[999999]), viewer, expect=404)

    assert "999999" in answer["error"]


def test_it_records_each_call_in_the_audit_trail(api_get, viewer):
    make("a", 2)
    make("b", 3)

    api_get(LIST, viewer, kind="silence")

    entry = AuditEntry.objects.get(action="api.read")
    assert entry.actor == viewer
    assert entry.detail == f"{LIST}?kind=silence"
    assert entry.new == {"count": 2, "status": 200}
    assert entry.target_type == "api.apitoken"
