from html import unescape

from django.urls import reverse

from notifwatch.failures.reviews import decide, finish_review, start_review
from tests.reviews.data import ago

URL = reverse("review_list")


def page(client) -> str:
    response = client.get(URL)
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_it_invites_the_first_review(client, reviewer, db):
    client.force_login(reviewer)
    content = page(client)
    assert "No review yet. The first agenda covers the last 7 days" in content
    assert f'<form method="post" action="{reverse("review_start")}"' in content
    assert "Start this week's review</button>" in content
    assert "No finished reviews yet" in content


def test_it_offers_to_resume_an_unfinished_review(client, reviewer, week):
    review, _ = start_review(reviewer)
    decide(review.items.get(position=1), "accept", actor=reviewer)
    client.force_login(reviewer)

    content = page(client)

    assert "A review is in progress" in content
    assert "5 on the agenda, 4 still to decide" in content
    assert f'href="{reverse("review_detail", args=[review.pk])}">Resume the review</a>' in content
    assert "Start this week" not in content


def test_it_lists_past_reviews_with_their_minutes(client, reviewer, viewer, week):
    last_week, _ = start_review(reviewer, now=ago(days=7))
    decide(last_week.items.get(position=1), "accept", actor=reviewer)
    finish_review(last_week, actor=reviewer)
    client.force_login(viewer)

    content = page(client)

    minutes = reverse("review_minutes", args=[last_week.pk])
    assert f'<a href="{minutes}">Minutes →</a>' in content
    assert '<td class="num">1 of 5</td>' in content
    assert '<td class="num">4</td>' in content  # carried over
    assert "Reviewers and admins run the review; everyone can read the minutes." in content


def test_it_says_when_this_weeks_review_is_done(client, reviewer, week):
    review, _ = start_review(reviewer)
    finish_review(review, actor=reviewer)
    client.force_login(reviewer)

    content = page(client)

    assert "This week's review is done" in content
    assert "Start another review</button>" in content
