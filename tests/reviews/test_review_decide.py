"""Every decision goes through the exception's action functions: its history, an audit entry
for the exception and one for the review, and the item's decision, all or nothing."""

from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import (
    FailureGroup,
    GroupHistory,
    HistoryKind,
    ReviewItem,
    Status,
)
from notifwatch.failures.reviews import decide, finish_review, start_review


@pytest.fixture
def review(reviewer, week):
    review, _ = start_review(reviewer)
    return review


def item_at(review, position: int) -> ReviewItem:
    return review.items.get(position=position)


def decide_url(item: ReviewItem) -> str:
    return reverse("review_decide", args=[item.review_id, item.pk])


def detail_url(review, item=None) -> str:
    base = reverse("review_detail", args=[review.pk])
    return f"{base}?item={item.pk}" if item else base


def in_days(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def new_history(group: FailureGroup, since: int) -> list[tuple[str, str]]:
    return list(
        GroupHistory.objects.filter(group=group, pk__gt=since).values_list("kind", "comment")
    )


def last_history_id() -> int:
    last = GroupHistory.objects.order_by("-pk").first()
    return last.pk if last else 0


def new_audit(since: int) -> list[str]:
    return list(
        AuditEntry.objects.filter(pk__gt=since).order_by("pk").values_list("action", flat=True)
    )


def last_audit_id() -> int:
    last = AuditEntry.objects.order_by("-pk").first()
    return last.pk if last else 0


def test_assign_gives_the_exception_an_owner(client, reviewer, viewer, review, week, teams):
    item = item_at(review, 3)  # new, unowned
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    response = client.post(
        decide_url(item),
        {"decision": "assign", "team": teams["CRM admins"].pk, "assignee": viewer.pk},
    )

    assert response.status_code == 302
    week.new.refresh_from_db()
    assert (week.new.team, week.new.assignee, week.new.status) == (
        teams["CRM admins"],
        viewer,
        Status.ASSIGNED,
    )
    assert new_history(week.new, history) == [(HistoryKind.ASSIGNED, "")]
    assert new_audit(audit) == ["exception.assigned", "review.decided"]
    item.refresh_from_db()
    assert (item.decision, item.decided_by, item.team, item.assignee) == (
        "assign",
        reviewer,
        teams["CRM admins"],
        viewer,
    )
    assert item.decided_at is not None
    entry = AuditEntry.objects.get(action="review.decided")
    assert (entry.actor, entry.target_type, entry.target_id) == (
        reviewer,
        "failures.review",
        str(review.pk),
    )
    assert entry.new["exception"] == week.new.pk
    assert entry.new["decision"] == "assign"


def test_accept_closes_it_as_expected(client, reviewer, review, week):
    item = item_at(review, 5)
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    client.post(decide_url(item), {"decision": "accept", "note": "Test clinic, not real"})

    week.unowned.refresh_from_db()
    assert week.unowned.status == Status.ACCEPTED
    ((kind, comment),) = new_history(week.unowned, history)
    assert kind == HistoryKind.STATUS
    assert comment.startswith("Accepted as expected in the weekly review of ")
    assert comment.endswith(": Test clinic, not real")
    assert new_audit(audit) == ["exception.status", "review.decided"]
    item.refresh_from_db()
    assert (item.decision, item.note) == ("accept", "Test clinic, not real")


def test_snooze_hides_it_until_a_date(client, reviewer, review, week):
    item = item_at(review, 4)
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    client.post(decide_url(item), {"decision": "snooze", "snooze_until": in_days(14)})

    week.grown.refresh_from_db()
    assert week.grown.status == Status.SNOOZED
    assert timezone.localtime(week.grown.snoozed_until).date().isoformat() == in_days(14)
    assert [kind for kind, _ in new_history(week.grown, history)] == [HistoryKind.SNOOZED]
    assert new_audit(audit) == ["exception.snoozed", "review.decided"]
    item.refresh_from_db()
    assert (item.decision, item.snooze_until.isoformat()) == ("snooze", in_days(14))
    assert item.team.name == "Billing"  # the owner it keeps


def test_fix_requested_assigns_with_a_note(client, reviewer, review, week, teams):
    item = item_at(review, 3)
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    client.post(
        decide_url(item),
        {
            "decision": "fix_requested",
            "team": teams["CRM admins"].pk,
            "note": "Correct the three addresses in the CRM",
        },
    )

    week.new.refresh_from_db()
    assert (week.new.team, week.new.status) == (teams["CRM admins"], Status.ASSIGNED)
    (assigned, note) = new_history(week.new, history)
    assert assigned == (HistoryKind.ASSIGNED, "")
    assert note[0] == HistoryKind.NOTE
    assert note[1].startswith("Fix requested in the weekly review of ")
    assert note[1].endswith(": Correct the three addresses in the CRM")
    assert new_audit(audit) == ["exception.assigned", "exception.note", "review.decided"]
    item.refresh_from_db()
    assert (item.decision, item.team) == ("fix_requested", teams["CRM admins"])


def test_fix_requested_from_the_current_owner_sets_it_assigned(client, reviewer, review, week):
    item = item_at(review, 1)  # regressed, owned by Platform
    history = last_history_id()
    client.force_login(reviewer)

    client.post(decide_url(item), {"decision": "fix_requested", "note": "Check the new template"})

    week.regressed.refresh_from_db()
    assert (week.regressed.team.name, week.regressed.status) == ("Platform", Status.ASSIGNED)
    assert [kind for kind, _ in new_history(week.regressed, history)] == [
        HistoryKind.STATUS,
        HistoryKind.NOTE,
    ]


def test_escalate_hands_it_to_a_team_and_keeps_its_status(client, reviewer, review, week, teams):
    item = item_at(review, 1)  # regressed
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    client.post(
        decide_url(item),
        {"decision": "escalate", "team": teams["Billing"].pk, "note": "Third regression"},
    )

    week.regressed.refresh_from_db()
    assert (week.regressed.team, week.regressed.status) == (teams["Billing"], Status.REGRESSED)
    assigned, note = new_history(week.regressed, history)
    assert assigned[0] == HistoryKind.ASSIGNED
    assert note[0] == HistoryKind.NOTE
    assert note[1].startswith("Escalated in the weekly review of ")
    assert note[1].endswith(": Third regression")
    assert new_audit(audit) == ["exception.assigned", "exception.note", "review.decided"]
    item.refresh_from_db()
    assert (item.decision, item.team, item.note) == (
        "escalate",
        teams["Billing"],
        "Third regression",
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"decision": "assign"}, "Choose a team, a person, or both."),
        ({"decision": "snooze"}, "Pick the date it should come back."),
        ({"decision": "snooze", "snooze_until": "2020-01-01"}, "Pick a date after today."),
        ({"decision": "fix_requested", "note": "Fix it"}, "It has no owner yet: choose who"),
        ({"decision": "fix_requested", "team": "", "note": ""}, "This field is required."),
        ({"decision": "escalate", "note": "Why"}, "This field is required."),
        ({"decision": "assign", "team": "999"}, "Unknown team: pick one from the list."),
    ],
)
def test_it_explains_what_is_missing_and_changes_nothing(client, reviewer, review, data, error):
    item = item_at(review, 3)  # unowned
    history, audit = last_history_id(), last_audit_id()
    client.force_login(reviewer)

    response = client.post(decide_url(item), data)

    assert response.status_code == 200
    content = unescape(response.content.decode())
    assert error in content
    # The form with the error stays open; the others stay closed.
    key = {"assign": "a", "snooze": "s", "fix_requested": "f", "escalate": "e"}[data["decision"]]
    assert f'id="decide-{data["decision"]}" data-shortcut="{key}" open>' in content
    assert content.count('" open>') == 1
    assert (last_history_id(), last_audit_id()) == (history, audit)
    item.refresh_from_db()
    assert item.decision == ""


def test_without_javascript_it_moves_on_to_the_next_undecided_item(client, reviewer, review, teams):
    first, second, third, fourth, fifth = review.items.order_by("position")
    decide(second, "accept", actor=reviewer)
    client.force_login(reviewer)

    response = client.post(decide_url(first), {"decision": "accept"})

    assert response.status_code == 302
    assert response["Location"] == detail_url(review, third)  # the decided second is skipped
    content = unescape(client.get(response["Location"]).content.decode())
    assert "Item 1, #" in content and ": accepted as expected." in content
    assert "Item 3 of 5" in content


def test_it_wraps_round_to_undecided_items_earlier_in_the_agenda(client, reviewer, review):
    first, *middle, last = review.items.order_by("position")
    for item in middle:
        decide(item, "accept", actor=reviewer)
    client.force_login(reviewer)

    response = client.post(decide_url(last), {"decision": "accept"})

    assert response["Location"] == detail_url(review, first)


def test_the_last_decision_leads_to_finishing(client, reviewer, review):
    *rest, last = review.items.order_by("position")
    for item in rest:
        decide(item, "accept", actor=reviewer)
    client.force_login(reviewer)

    response = client.post(decide_url(last), {"decision": "accept"}, follow=True)

    assert response.redirect_chain == [(detail_url(review), 302)]
    assert "All 5 items decided" in response.content.decode()


def test_htmx_gets_the_next_item_in_place(client, reviewer, review, teams):
    first, second = review.items.order_by("position")[:2]
    client.force_login(reviewer)

    response = client.post(
        decide_url(first),
        {"decision": "escalate", "team": teams["Billing"].pk, "note": "Again"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert response["HX-Push-Url"] == detail_url(review, second)
    content = unescape(response.content.decode())
    assert "<html" not in content
    assert 'id="review-item"' in content
    assert "Item 2 of 5" in content
    assert ": escalated to Billing (team).</div>" in content
    assert (
        '<p class="helptext" id="undecided-count" hx-swap-oob="true">4 undecided items' in content
    )


def test_htmx_shows_form_errors_in_place(client, reviewer, review):
    client.force_login(reviewer)
    response = client.post(
        decide_url(item_at(review, 3)), {"decision": "assign"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "HX-Push-Url" not in response
    assert "Choose a team, a person, or both." in response.content.decode()
    assert "<html" not in response.content.decode()


def test_a_new_decision_replaces_the_earlier_one(client, reviewer, review, week, teams):
    item = item_at(review, 3)
    decide(item, "accept", actor=reviewer)
    client.force_login(reviewer)

    client.post(decide_url(item), {"decision": "assign", "team": teams["Billing"].pk})

    item.refresh_from_db()
    week.new.refresh_from_db()
    assert item.decision == "assign"
    # Accepted a moment ago, assigned now: it is open again, with its owner.
    assert (week.new.status, week.new.team) == (Status.ASSIGNED, teams["Billing"])
    entry = AuditEntry.objects.filter(action="review.decided").order_by("-pk").first()
    assert entry.old == {"decision": "accept"}


def test_a_finished_review_takes_no_more_decisions(client, reviewer, review, week):
    item = item_at(review, 3)
    finish_review(review, actor=reviewer)
    audit = last_audit_id()
    client.force_login(reviewer)

    response = client.post(decide_url(item), {"decision": "accept"})

    assert response.status_code == 302
    assert response["Location"] == reverse("review_minutes", args=[review.pk])
    assert last_audit_id() == audit
    week.new.refresh_from_db()
    assert week.new.status == Status.NEW
    response = client.post(decide_url(item), {"decision": "accept"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("review_minutes", args=[review.pk])


def test_it_refuses_unknown_decisions_and_items_of_other_reviews(client, reviewer, review):
    client.force_login(reviewer)
    item = item_at(review, 1)
    assert client.post(decide_url(item), {"decision": "delete"}).status_code == 400
    other = reverse("review_decide", args=[review.pk + 1, item.pk])
    assert client.post(other, {"decision": "accept"}).status_code == 404


def test_a_decision_is_all_or_nothing(reviewer, review, week, monkeypatch):
    import notifwatch.failures.reviews as reviews

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(reviews, "add_note", broken)
    item = item_at(review, 1)
    history, audit = last_history_id(), last_audit_id()

    with pytest.raises(RuntimeError):
        decide(item, "escalate", team=week.grown.team, note="x", actor=reviewer)

    assert (last_history_id(), last_audit_id()) == (history, audit)
    week.regressed.refresh_from_db()
    assert week.regressed.team.name == "Platform"
    item.refresh_from_db()
    assert item.decision == ""
