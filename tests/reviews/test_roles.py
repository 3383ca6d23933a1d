"""Reviewers and admins run reviews; viewers and auditors read the minutes, and nothing more,
even when they post the forms by hand."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import FailureGroup, GroupHistory, Review
from notifwatch.failures.reviews import start_review


@pytest.fixture
def review(admin_user, week):
    review, _ = start_review(admin_user)
    return review


def forged_posts(review, teams):
    item = review.items.get(position=1)
    snooze_date = (timezone.localdate() + timedelta(days=7)).isoformat()
    return [
        (reverse("review_start"), {}),
        (
            reverse("review_decide", args=[review.pk, item.pk]),
            {"decision": "assign", "team": teams["Billing"].pk},
        ),
        (reverse("review_decide", args=[review.pk, item.pk]), {"decision": "accept"}),
        (
            reverse("review_decide", args=[review.pk, item.pk]),
            {"decision": "snooze", "snooze_until": snooze_date},
        ),
        (reverse("review_finish", args=[review.pk]), {"minutes_note": "done"}),
    ]


@pytest.mark.parametrize("role", ["viewer", "auditor", "no_role_user"])
def test_it_refuses_forged_posts_from_readers(client, request, review, teams, role):
    client.force_login(request.getfixturevalue(role))
    before = (
        AuditEntry.objects.count(),
        GroupHistory.objects.count(),
        list(FailureGroup.objects.values_list("status", "team_id").order_by("pk")),
    )

    for url, data in forged_posts(review, teams):
        response = client.post(url, data)
        assert response.status_code == 403, url
        response = client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 403, url

    review.refresh_from_db()
    assert review.completed_at is None
    assert not review.items.exclude(decision="").exists()
    assert Review.objects.count() == 1
    assert before == (
        AuditEntry.objects.count(),
        GroupHistory.objects.count(),
        list(FailureGroup.objects.values_list("status", "team_id").order_by("pk")),
    )


@pytest.mark.parametrize("role", ["admin_user", "reviewer"])
def test_reviewers_and_admins_run_reviews(client, request, review, teams, role):
    client.force_login(request.getfixturevalue(role))
    for url, data in forged_posts(review, teams)[1:2] + forged_posts(review, teams)[-1:]:
        assert client.post(url, data).status_code == 302


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_readers_read_the_review_and_its_minutes(client, request, review, role):
    client.force_login(request.getfixturevalue(role))
    for url in (
        reverse("review_list"),
        reverse("review_detail", args=[review.pk]),
        reverse("review_minutes", args=[review.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        assert "Start this week" not in content
        assert "review_decide" not in content
        assert 'name="decision"' not in content
        assert "Finish the review" not in content


def test_a_user_without_a_role_sees_nothing(client, no_role_user, review):
    client.force_login(no_role_user)
    for url in (
        reverse("review_list"),
        reverse("review_detail", args=[review.pk]),
        reverse("review_minutes", args=[review.pk]),
    ):
        assert client.get(url).status_code == 403, url


def test_signing_in_comes_first(client, review):
    for url in (reverse("review_list"), reverse("review_minutes", args=[review.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert client.post(reverse("review_start")).status_code == 302
    assert Review.objects.count() == 1
