"""One step for the new exceptions that already have a team: each still gets its decision."""

import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign
from notifwatch.failures.models import Decision, GroupHistory, Status
from notifwatch.failures.reviews import confirm_routing, start_review
from tests.reviews.data import ago, bounces


@pytest.fixture
def routed(json_source, teams, week):
    """Two more new exceptions this week, given a team as an owner rule would."""
    groups = [
        bounces(json_source, "payment_receipt", 2, ago(days=2)),
        bounces(json_source, "order_shipped", 1, ago(days=3)),
    ]
    for group in groups:
        assign(group, team=teams["Billing"], rule="owner rule 1 (delivery failures)")
    return groups


def test_it_keeps_each_team_as_a_decision_of_its_own(reviewer, routed, week):
    review, _ = start_review(reviewer)

    assert confirm_routing(review, actor=reviewer) == 2

    items = {item.group_id: item for item in review.items.all()}
    for group in routed:
        item = items[group.pk]
        assert item.decision == Decision.ASSIGN
        assert item.team.name == "Billing"
        assert item.decided_by == reviewer
        group.refresh_from_db()
        assert group.status == Status.ASSIGNED
        # Keeping the team the rule gave changes nothing on the exception: its history gets no
        # "assigned to the same owner again" row; the decision is the item's (minutes, trail).
        assert not GroupHistory.objects.filter(group=group, actor=reviewer).exists()
    # Untouched: the unowned new exception still waits for a decision of its own.
    assert items[week.new.pk].decision == ""
    entry = AuditEntry.objects.get(action="review.routing_confirmed")
    assert entry.new == {"items": 2, "teams": {"Billing": 2}}
    decided = AuditEntry.objects.filter(action="review.decided")
    assert sorted(e.new["exception"] for e in decided) == sorted(g.pk for g in routed)
    assert not AuditEntry.objects.filter(action="exception.assigned", actor=reviewer).exists()
    # A second click finds nothing left.
    assert confirm_routing(review, actor=reviewer) == 0


def test_the_review_page_offers_it_and_the_button_works(client, reviewer, routed, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)
    page = client.get(reverse("review_detail", args=[review.pk])).content.decode()
    assert "2 new exceptions already have a team" in page
    assert "Billing 2" in page

    response = client.post(reverse("review_confirm_routing", args=[review.pk]), follow=True)

    assert "Kept the team of 2 new exceptions." in response.content.decode()
    assert "already have a team" not in response.content.decode()
    assert review.items.filter(decision=Decision.ASSIGN).count() == 2


def test_a_viewer_cannot(client, viewer, reviewer, routed):
    review, _ = start_review(reviewer)
    client.force_login(viewer)
    assert (
        "already have a team"
        not in client.get(reverse("review_detail", args=[review.pk])).content.decode()
    )
    response = client.post(reverse("review_confirm_routing", args=[review.pk]))
    assert response.status_code == 403
    assert not review.items.exclude(decision="").exists()
