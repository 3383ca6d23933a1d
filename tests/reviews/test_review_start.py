from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import Review
from notifwatch.failures.reviews import start_review
from tests.reviews.data import ago

URL = reverse("review_start")


def test_it_builds_the_agenda_and_opens_its_first_item(client, reviewer, week):
    client.force_login(reviewer)

    response = client.post(URL)

    review = Review.objects.get()
    first = review.items.get(position=1)
    assert response.status_code == 302
    assert response["Location"] == reverse("review_detail", args=[review.pk])
    page = client.get(response["Location"]).content.decode()
    assert "This week&#x27;s review has started: 5 exceptions on the agenda." in page
    assert f"#{first.group_id} " in page
    assert "Item 1 of 5" in page
    assert AuditEntry.objects.filter(action="review.started", actor=reviewer).count() == 1


def test_it_resumes_the_unfinished_review(client, reviewer, admin_user, week):
    review, _ = start_review(admin_user, now=ago(minutes=0))
    client.force_login(reviewer)

    response = client.post(URL, follow=True)

    assert response.redirect_chain == [(reverse("review_detail", args=[review.pk]), 302)]
    assert Review.objects.count() == 1
    assert "A review is already under way (started by alice)" in response.content.decode()
    assert AuditEntry.objects.filter(action="review.started").count() == 1


def test_it_starts_with_an_empty_agenda_when_nothing_needs_a_decision(client, reviewer):
    client.force_login(reviewer)

    response = client.post(URL, follow=True)

    content = response.content.decode()
    assert "0 exceptions on the agenda" in content
    assert "Nothing on the agenda this week" in content


def test_it_only_starts_on_post(client, reviewer):
    client.force_login(reviewer)
    assert client.get(URL).status_code == 405
    assert not Review.objects.exists()
