from datetime import timedelta
from html import unescape

from django.urls import reverse
from django.utils import timezone

from notifwatch.failures.models import Review
from notifwatch.failures.reviews import decide, finish_review, start_review


def minutes(client, review: Review) -> str:
    response = client.get(reverse("review_minutes", args=[review.pk]))
    assert response.status_code == 200
    return unescape(response.content.decode())


def held(reviewer, week, teams, viewer) -> Review:
    """Fourteen minutes, four decisions, one left for next week."""
    review, _ = start_review(reviewer)
    items = {item.group_id: item for item in review.items.all()}
    decide(
        items[week.regressed.pk],
        "escalate",
        team=teams["Platform"],
        note="Third time since May",
        actor=reviewer,
    )
    decide(items[week.new.pk], "assign", team=teams["CRM admins"], assignee=viewer, actor=reviewer)
    decide(items[week.silent.pk], "accept", note="Sender paused for the migration", actor=reviewer)
    until = timezone.localdate() + timedelta(days=14)
    decide(items[week.grown.pk], "snooze", snooze_until=until, actor=reviewer)
    finish_review(review, actor=reviewer, note="Ask Billing about the invoice template.")
    started = timezone.now() - timedelta(minutes=14)
    Review.objects.filter(pk=review.pk).update(started_at=started)
    review.refresh_from_db()
    return review


def test_it_says_who_ran_it_and_when(client, reviewer, week, teams, viewer):
    review = held(reviewer, week, teams, viewer)
    client.force_login(viewer)

    content = minutes(client, review)

    assert f"Week of {review.week_start:%A, %B} {review.week_start.day}" in content
    assert "Run by</dt>\n      <dd>rita</dd>" in content
    assert "Duration</dt><dd>14 minutes</dd>" in content
    local = timezone.localtime(review.completed_at)
    assert f"Finished</dt><dd>{local:%a %b} {local.day}, {local:%Y, %H:%M}</dd>" in content
    assert (
        "5 exceptions: 4 decided (1 assigned, 1 accepted as expected, 1 snoozed, 1 escalated), 1 carried over"
        in content
    )
    assert "Ask Billing about the invoice template." in content


def test_it_lists_each_decision_with_its_owner_and_note(client, reviewer, week, teams, viewer):
    review = held(reviewer, week, teams, viewer)
    client.force_login(reviewer)

    content = minutes(client, review)

    decisions = content[content.index("<h2>Decisions</h2>") : content.index("Carried over to next")]
    rows = decisions.split("<tr>")[2:]
    assert len(rows) == 4
    assert f"#{week.regressed.pk}</a>" in rows[0]
    assert "<strong>Escalated</strong>" in rows[0]
    assert "<td>Platform (team)</td>" in rows[0]
    assert "Third time since May" in rows[0]
    assert "<td>CRM admins (team) · victor (person)</td>" in rows[2]
    assert "<strong>Accepted as expected</strong>" in rows[1]
    assert "Sender paused for the migration" in rows[1]
    assert '<strong>Snoozed</strong> <span class="nowrap">until ' in rows[3]


def test_undecided_items_are_listed_as_carried_over(client, reviewer, week, teams, viewer):
    review = held(reviewer, week, teams, viewer)
    client.force_login(reviewer)

    content = minutes(client, review)

    carried = content[content.index("Carried over to next week") :]
    assert f"#{week.unowned.pk}</a>" in carried
    assert "Still has no owner." in carried
    assert f"#{week.new.pk}</a>" not in carried


def test_an_unfinished_review_says_so(client, reviewer, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)

    content = minutes(client, review)

    assert "In progress: not finished yet." in content
    assert "Resume the review →" in content
    assert "Finished</dt><dd>not yet</dd>" in content
    assert "Not decided yet" in content
    assert "No decisions were recorded." in content


def test_it_is_printable(client, reviewer, week, teams, viewer):
    review = held(reviewer, week, teams, viewer)
    client.force_login(viewer)

    content = minutes(client, review)

    assert '<button type="button" data-print hidden>Print</button>' in content
    assert 'class="crumbs no-print"' in content
    css = client.get("/static/notifwatch.css")
    stylesheet = b"".join(css.streaming_content).decode()
    assert "@media print" in stylesheet


def test_readers_see_notes_masked(client, reviewer, auditor, week, teams, viewer):
    review, _ = start_review(reviewer)
    item = review.items.get(group=week.new)
    decide(item, "accept", note="Customer chloe.martin@example.com asked", actor=reviewer)
    client.force_login(auditor)

    content = minutes(client, review)

    assert "chloe.martin@example.com" not in content
    assert "Customer c•••@example.com asked" in content
