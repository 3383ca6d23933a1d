from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign
from notifwatch.failures.models import AgendaReason, Review
from notifwatch.failures.reviews import decide, start_review
from tests.reviews.data import ago, bounces, created


def url(review: Review) -> str:
    return reverse("review_finish", args=[review.pk])


def test_it_stamps_who_finished_it_and_when(client, reviewer, admin_user, week, teams):
    review, _ = start_review(admin_user)
    client.force_login(reviewer)

    response = client.post(url(review), {"minutes_note": "Billing owns the CRM clean-up."})

    assert response.status_code == 302
    assert response["Location"] == reverse("review_minutes", args=[review.pk])
    review.refresh_from_db()
    assert (review.started_by, review.completed_by) == (admin_user, reviewer)
    assert review.completed_at is not None
    assert review.minutes_note == "Billing owns the CRM clean-up."
    entry = AuditEntry.objects.get(action="review.finished")
    assert (entry.actor, entry.target_id) == (reviewer, str(review.pk))
    assert entry.new == {"items": 5, "decided": 0, "carried_over": 5}


def test_undecided_items_carry_over_to_next_weeks_agenda(client, reviewer, json_source, teams):
    left = created(bounces(json_source, "welcome_email", 2, ago(days=9)), ago(days=9))
    assign(left, team=teams["Platform"])
    handled = created(bounces(json_source, "invoice", 1, ago(days=9)), ago(days=9))
    last_week, _ = start_review(reviewer, now=ago(days=7))
    decide(last_week.items.get(group=handled), "assign", team=teams["Billing"], actor=reviewer)
    client.force_login(reviewer)

    client.post(url(last_week))
    client.post(reverse("review_start"))

    this_week = Review.objects.exclude(pk=last_week.pk).get()
    assert list(this_week.items.values_list("group_id", "reason_on_agenda")) == [
        (left.pk, AgendaReason.CARRIED_OVER)
    ]


def test_finishing_twice_changes_nothing(client, reviewer, admin_user, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)
    client.post(url(review), {"minutes_note": "First"})
    review.refresh_from_db()
    client.force_login(admin_user)

    response = client.post(url(review), {"minutes_note": "Second"})

    assert response.status_code == 302
    finished = Review.objects.get(pk=review.pk)
    assert (finished.completed_by, finished.completed_at, finished.minutes_note) == (
        reviewer,
        review.completed_at,
        "First",
    )
    assert AuditEntry.objects.filter(action="review.finished").count() == 1


def test_htmx_is_sent_to_the_minutes(client, reviewer, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)
    response = client.post(url(review), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("review_minutes", args=[review.pk])


def test_it_only_finishes_on_post(client, reviewer, week):
    review, _ = start_review(reviewer)
    client.force_login(reviewer)
    assert client.get(url(review)).status_code == 405
    review.refresh_from_db()
    assert review.completed_at is None
