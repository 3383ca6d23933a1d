from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign, merge
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Status
from tests.exceptions.data import simple_problem


def url(group: FailureGroup) -> str:
    return reverse("exception_action", args=[group.pk])


def detail_url(group: FailureGroup) -> str:
    return reverse("exception_detail", args=[group.pk])


def tomorrow_plus(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def state(group: FailureGroup) -> dict:
    return FailureGroup.objects.values().get(pk=group.pk)


def last_history(group: FailureGroup) -> GroupHistory:
    return GroupHistory.objects.filter(group=group).last()


def follow(client, group: FailureGroup, data: dict) -> str:
    """Post without JavaScript: expect a redirect back to the page, then read it."""
    response = client.post(url(group), data)
    assert response.status_code == 302
    assert response["Location"] == detail_url(group)
    return unescape(client.get(response["Location"]).content.decode())


def test_it_assigns_a_team(client, reviewer, bounced, teams):
    client.force_login(reviewer)
    audits = AuditEntry.objects.count()

    content = follow(client, bounced, {"action": "assign", "team": teams["CRM admins"].pk})

    bounced.refresh_from_db()
    assert (bounced.team, bounced.status) == (teams["CRM admins"], Status.ASSIGNED)
    entry = last_history(bounced)
    assert (entry.kind, entry.actor) == (HistoryKind.ASSIGNED, reviewer)
    audit = AuditEntry.objects.order_by("-id").first()
    assert AuditEntry.objects.count() == audits + 1
    assert (audit.action, audit.actor, audit.target_id) == (
        "exception.assigned",
        reviewer,
        str(bounced.pk),
    )
    assert "Owner: CRM admins (team)." in content
    assert "rita</strong> — Assigned" in content
    assert "Team: none → CRM admins" in content


def test_it_keeps_the_team_when_assigning_a_person(client, reviewer, viewer, bounced, teams):
    assign(bounced, team=teams["Billing"], actor=reviewer)
    client.force_login(reviewer)

    content = follow(client, bounced, {"action": "assign", "team": "", "assignee": viewer.pk})

    bounced.refresh_from_db()
    assert (bounced.team, bounced.assignee) == (teams["Billing"], viewer)
    assert "Owner: Billing (team) · victor (person)." in content


def test_it_asks_for_a_team_or_a_person(client, reviewer, bounced):
    client.force_login(reviewer)
    response = client.post(url(bounced), {"action": "assign", "team": "", "assignee": ""})
    assert response.status_code == 200
    assert "Choose a team, a person, or both." in response.content.decode()
    assert not GroupHistory.objects.filter(kind=HistoryKind.ASSIGNED).exists()


def test_it_shows_an_unknown_team_next_to_the_field(client, reviewer, bounced, teams):
    client.force_login(reviewer)
    before = state(bounced)

    response = client.post(url(bounced), {"action": "assign", "team": "99999"})

    content = response.content.decode()
    assert response.status_code == 200
    field = content[content.index('<label for="assign_team">') :]
    assert field.index("Unknown team: pick one from the list.") < field.index(
        '<label for="assign_assignee">'
    )
    assert state(bounced) == before


@pytest.mark.parametrize(
    ("status", "notice"),
    [
        (Status.RESOLVED, "Marked resolved. New occurrences will reopen it as regressed."),
        (Status.ACCEPTED, "Accepted as expected: it leaves the open list."),
    ],
)
def test_it_changes_the_status(client, reviewer, bounced, status, notice):
    client.force_login(reviewer)

    content = follow(client, bounced, {"action": "status", "status": status, "comment": "Done"})

    bounced.refresh_from_db()
    assert bounced.status == status
    entry = last_history(bounced)
    assert (entry.kind, entry.new, entry.comment) == (
        HistoryKind.STATUS,
        {"status": status},
        "Done",
    )
    assert AuditEntry.objects.filter(action="exception.status", actor=reviewer).count() == 1
    assert notice in content
    assert FailureGroup.objects.open_for_review().count() == 0


def test_it_reopens_as_new(client, reviewer, bounced):
    client.force_login(reviewer)
    follow(client, bounced, {"action": "status", "status": "accepted"})
    content = follow(client, bounced, {"action": "status", "status": "new"})
    bounced.refresh_from_db()
    assert bounced.status == Status.NEW
    assert "Reopened as new." in content


def test_it_refuses_a_status_people_do_not_set(client, reviewer, bounced):
    client.force_login(reviewer)
    response = client.post(url(bounced), {"action": "status", "status": "regressed"})
    assert "Select a valid choice." in response.content.decode()
    bounced.refresh_from_db()
    assert bounced.status == Status.NEW


def test_it_snoozes_until_a_date_or_a_number_of_occurrences(client, reviewer, bounced):
    client.force_login(reviewer)
    until = tomorrow_plus(7)

    content = follow(
        client,
        bounced,
        {
            "action": "snooze",
            "until": until,
            "wake_at_occurrences": "10",
            "comment": "Provider fix",
        },
    )

    bounced.refresh_from_db()
    assert bounced.status == Status.SNOOZED
    assert timezone.localtime(bounced.snoozed_until).date().isoformat() == until
    assert timezone.localtime(bounced.snoozed_until).hour == 0
    assert bounced.snooze_wake_occurrences == 10
    entry = last_history(bounced)
    assert (entry.kind, entry.comment) == (HistoryKind.SNOOZED, "Provider fix")
    assert AuditEntry.objects.filter(action="exception.snoozed", actor=reviewer).count() == 1
    assert "or until it reaches 10 occurrences." in content


def test_it_snoozes_without_a_threshold(client, reviewer, bounced):
    client.force_login(reviewer)
    follow(client, bounced, {"action": "snooze", "until": tomorrow_plus(1)})
    bounced.refresh_from_db()
    assert (bounced.status, bounced.snooze_wake_occurrences) == (Status.SNOOZED, None)


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"until": "2020-01-01"}, "until", "Pick a date after today."),
        ({"until": "today"}, "until", "Enter a valid date."),
        ({}, "until", "This field is required."),
        (
            {"until": "__tomorrow__", "wake_at_occurrences": "3"},
            "wake_at_occurrences",
            "It already has 3: pick a number above that.",
        ),
        (
            {"until": "__tomorrow__", "wake_at_occurrences": "-1"},
            "wake_at_occurrences",
            "Ensure this value is greater than or equal to 1.",
        ),
    ],
)
def test_it_shows_invalid_snooze_input_next_to_the_field(
    client, reviewer, bounced, data, field, error
):
    if data.get("until") == "__tomorrow__":
        data["until"] = tomorrow_plus(1)
    client.force_login(reviewer)
    before = state(bounced)

    response = client.post(url(bounced), {"action": "snooze", **data})

    content = unescape(response.content.decode())
    assert response.status_code == 200
    # The snooze form stays open with the error inside that field's block.
    assert '<details class="decide" open>\n      <summary>Snooze until a date…' in content
    block = content[content.index(f'<label for="snooze_{field}">') :]
    assert block.index(error) < block.index("</div>")
    assert state(bounced) == before
    assert not GroupHistory.objects.filter(kind=HistoryKind.SNOOZED).exists()


def test_it_adds_a_note(client, reviewer, bounced):
    client.force_login(reviewer)

    content = follow(client, bounced, {"action": "note", "text": "  Asked CRM to check.  "})

    entry = last_history(bounced)
    assert (entry.kind, entry.actor, entry.comment) == (
        HistoryKind.NOTE,
        reviewer,
        "Asked CRM to check.",
    )
    assert AuditEntry.objects.filter(action="exception.note", actor=reviewer).count() == 1
    assert "Note added." in content
    assert "Asked CRM to check." in content


def test_it_refuses_an_empty_note(client, reviewer, bounced):
    client.force_login(reviewer)
    response = client.post(url(bounced), {"action": "note", "text": "   "})
    assert "This field is required." in response.content.decode()
    assert not GroupHistory.objects.filter(kind=HistoryKind.NOTE).exists()


def test_it_lets_admins_act_too(client, admin_user, bounced, teams):
    client.force_login(admin_user)
    follow(client, bounced, {"action": "assign", "team": teams["Platform"].pk})
    assert last_history(bounced).actor == admin_user


def test_it_answers_htmx_with_the_owner_panel_and_the_history(client, reviewer, bounced, teams):
    client.force_login(reviewer)

    response = client.post(
        url(bounced), {"action": "assign", "team": teams["Billing"].pk}, HTTP_HX_REQUEST="true"
    )

    content = unescape(response.content.decode())
    assert response.status_code == 200
    assert "<html" not in content
    assert content.lstrip().startswith('<section class="panel" id="owner">')
    assert (
        '<div class="notice notice-success" role="status">Owner: Billing (team).</div>' in content
    )
    assert '<span class="badge x-assigned">Assigned</span>' in content
    assert '<section class="panel" id="history" hx-swap-oob="true">' in content
    assert "rita</strong> — Assigned" in content and "Team: none → Billing" in content
    # The status badge in the page heading follows along.
    assert '<span id="head-status" hx-swap-oob="true"><span class="badge x-assigned">' in content
    assert "Latest occurrences" not in content
    # Nothing waits in the session for the next full page.
    assert "Owner: Billing" not in client.get(detail_url(bounced)).content.decode()


def test_it_answers_htmx_with_errors_in_the_panel(client, reviewer, bounced):
    client.force_login(reviewer)
    response = client.post(
        url(bounced), {"action": "snooze", "until": "2020-01-01"}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    # 200, so htmx swaps it in (it leaves 4xx responses unswapped).
    assert response.status_code == 200
    assert content.lstrip().startswith('<section class="panel" id="owner">')
    assert "Pick a date after today." in content


@pytest.mark.parametrize("role", ["viewer", "auditor"])
@pytest.mark.parametrize(
    "data",
    [
        {"action": "assign", "team": "__team__"},
        {"action": "status", "status": "resolved"},
        {"action": "snooze", "until": "2031-01-01"},
        {"action": "note", "text": "forged"},
    ],
)
def test_it_refuses_a_forged_post_from_read_only_roles(client, request, role, data, bounced, teams):
    data = {**data, "team": teams["Billing"].pk} if data.get("team") else data
    client.force_login(request.getfixturevalue(role))
    before = state(bounced)
    counts = (GroupHistory.objects.count(), AuditEntry.objects.count())

    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.post(url(bounced), data, **headers)
        assert response.status_code == 403

    assert state(bounced) == before
    assert (GroupHistory.objects.count(), AuditEntry.objects.count()) == counts


def test_it_refuses_users_without_a_role(client, no_role_user, bounced):
    client.force_login(no_role_user)
    response = client.post(url(bounced), {"action": "note", "text": "x"})
    assert response.status_code == 403
    assert not GroupHistory.objects.filter(kind=HistoryKind.NOTE).exists()


def test_it_sends_anonymous_users_to_login(client, bounced):
    response = client.post(url(bounced), {"action": "note", "text": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not GroupHistory.objects.filter(kind=HistoryKind.NOTE).exists()


def test_it_accepts_only_post(client, reviewer, bounced):
    client.force_login(reviewer)
    assert client.get(url(bounced)).status_code == 405


def test_it_refuses_an_unknown_action(client, reviewer, bounced):
    client.force_login(reviewer)
    assert client.post(url(bounced), {"action": "delete"}).status_code == 400


def test_it_answers_404_for_an_unknown_exception(client, reviewer, db):
    client.force_login(reviewer)
    response = client.post(reverse("exception_action", args=[999]), {"action": "note", "text": "x"})
    assert response.status_code == 404


def test_it_sends_changes_of_a_merged_exception_to_the_kept_one(client, reviewer, db):
    record_problems([simple_problem("a", 1), simple_problem("b", 2)], rule="r")
    kept, gone = FailureGroup.objects.order_by("pk")
    merge([gone], kept)
    client.force_login(reviewer)
    before = state(gone)

    content = follow(client, gone, {"action": "status", "status": "accepted"})

    assert f"This exception was merged into #{kept.pk}: change that one instead." in content
    assert state(gone) == before
