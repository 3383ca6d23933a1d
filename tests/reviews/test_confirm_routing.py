"""One step for the new exceptions that already have a team: each still gets its decision."""

import re
from html import unescape

import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign
from notifwatch.failures.models import Decision, GroupHistory, Status
from notifwatch.failures.reviews import confirm_routing, decide, start_review
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


def page_of(client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200
    return unescape(response.content.decode())


def words(page: str) -> str:
    """The page's text without tags, one space between words."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


def card_badges(page: str) -> list[str]:
    """The words of the badges on the current item's card."""
    counts = re.search(
        r'<section class="panel review-card".*?<div class="counts">(.*?)</div>', page, re.S
    )
    return [
        unescape(b).strip()
        for b in re.findall(r'<span class="badge[^"]*"[^>]*>(.*?)</span>', counts.group(1))
    ]


def test_routed_new_items_go_last_and_say_where_they_went(reviewer, routed, week):
    review, _ = start_review(reviewer)

    order = list(review.items.order_by("position").values_list("group_id", flat=True))
    # What needs a person first; the routed new exceptions, most customers first, after it.
    assert order == [
        week.regressed.pk,
        week.silent.pk,
        week.new.pk,
        week.grown.pk,
        week.unowned.pk,
        routed[0].pk,
        routed[1].pk,
    ]
    assert review.items.get(group=routed[0]).reason_detail == (
        "New in the last 7 days, already routed to Billing."
    )
    assert review.items.get(group=week.new).reason_detail == "New in the last 7 days."


def test_the_first_step_is_keeping_the_teams(client, reviewer, routed, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)

    page = page_of(client, reverse("review_detail", args=[review.pk]))

    # A panel above the walk, with the primary button, what it does and how much it settles.
    panel = page.index('<section class="panel routed-confirm"')
    assert panel < page.index('<div class="review-progress">') < page.index("review-card")
    assert "First step" in page
    assert "settled in one step" in page and "2 of 7 items" in page
    assert "2 new exceptions already have a team (Billing 2)" in words(page)
    assert "5 items then need a decision one by one." in words(page)
    assert '<button type="submit" class="primary">Keep the teams of 2</button>' in page
    first_routed = review.items.get(group=routed[0])
    assert f'href="/reviews/{review.pk}/?item={first_routed.pk}" id="routed-walk"' in page
    # The walk opens on the first item that needs a person, and the routed ones are folded
    # away in the agenda under their own heading.
    assert "Item 1 of 7" in page
    folded = page.index('<details class="agenda-routed" id="agenda-routed">')
    assert "Already routed: 2 new exceptions with a team" in page
    assert page.index(f"/?item={first_routed.pk}", folded) > folded
    assert page.index(week.unowned.title) < folded


def test_badges_say_why_each_is_on_the_agenda_and_never_the_same_word_twice(
    client, reviewer, routed, week
):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)
    detail = reverse("review_detail", args=[review.pk])

    unowned_new = page_of(client, f"{detail}?item={review.items.get(group=week.new).pk}")
    routed_new = page_of(client, f"{detail}?item={review.items.get(group=routed[0]).pk}")
    regressed = page_of(client, f"{detail}?item={review.items.get(group=week.regressed).pk}")

    assert card_badges(unowned_new) == ["New · no owner", "Delivery failure"]
    assert card_badges(routed_new) == ["New · routed to Billing", "Delivery failure"]
    assert card_badges(regressed) == ["Regressed", "Delivery failure"]
    # The exception's own status is a fact on the card, not a second "New" badge.
    assert '<dt>Exception status</dt><dd class="status-new">New</dd>' in unowned_new
    assert '<dt>Exception status</dt><dd class="status-assigned">Assigned</dd>' in routed_new
    # The agenda list says the same.
    assert "New · routed to Billing · ○ to decide" in unowned_new
    assert "New · no owner · ○ to decide" in unowned_new


def test_the_button_keeps_them_and_the_walk_goes_on(client, reviewer, routed, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)

    response = client.post(reverse("review_confirm_routing", args=[review.pk]), follow=True)

    page = unescape(response.content.decode())
    assert "Kept the team of 2 new exceptions." in page
    assert "already have a team" not in page and "agenda-routed" not in page
    assert "Item 1 of 7" in page and "2 decided, 5 to go" in page
    assert review.items.filter(decision=Decision.ASSIGN).count() == 2
    # Kept items say what was decided; the word "routed" no longer claims they wait.
    assert "New · ✓ assigned to Billing (team)" in words(page)


def test_going_through_them_one_by_one(client, reviewer, routed, week, teams):
    review, _ = start_review(reviewer)
    first, second = (review.items.get(group=g) for g in routed)
    client.force_login(reviewer)
    detail = reverse("review_detail", args=[review.pk])

    page = page_of(client, f"{detail}?item={first.pk}")
    # The folded list opens; the one-step offer stays, without the link already followed.
    assert '<details class="agenda-routed" id="agenda-routed" open>' in page
    assert "Going through them one by one" in page and 'id="routed-walk"' not in page

    response = client.post(
        reverse("review_decide", args=[review.pk, first.pk]),
        {"decision": "assign", "team": teams["CRM admins"].pk},
    )

    # Deciding one leads to the next routed one, not back to the start of the agenda.
    assert response["Location"] == f"{detail}?item={second.pk}"
    first.refresh_from_db()
    assert first.team.name == "CRM admins"
    following = words(page_of(client, response["Location"]))
    assert "1 new exception already has a team (Billing 1)" in following


def test_with_everything_else_decided_the_routed_ones_still_wait(client, reviewer, routed, week):
    review, _ = start_review(reviewer)
    for item in review.items.order_by("position")[:5]:
        decide(item, Decision.ACCEPT, actor=reviewer)
    client.force_login(reviewer)

    page = page_of(client, reverse("review_detail", args=[review.pk]))

    assert "Everything else is decided" in page
    assert "Nothing else is left to decide." in page
    assert '<button type="submit" class="primary">Keep the teams of 2</button>' in page
    assert "review-card" not in page


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
