"""A reviewer sets up their own alerts and an API token through the real pages."""

import pytest
from django.core import mail
from playwright.sync_api import expect

from notifwatch.alerts.models import Subscription

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_subscribes_by_email_and_sends_a_test_alert(
    page, live_server, transactional_db, log_in, reviewer
):
    log_in(reviewer)
    page.get_by_role("link", name="Alerts").click()

    page.get_by_label("Tell me when").select_option("assigned")
    page.get_by_label("Email").check()
    page.get_by_label("Address or URL").fill("rita@example.com")
    page.get_by_role("button", name="Add").click()

    expect(page.get_by_text("Subscription added.")).to_be_visible()
    subscription = Subscription.objects.get(user=reviewer)
    assert (subscription.kind, subscription.target) == ("assigned", "rita@example.com")

    page.get_by_role("button", name="Send a test alert").click()

    expect(page.get_by_text("Test alert sent.")).to_be_visible()
    assert [message.to for message in mail.outbox] == [["rita@example.com"]]


def test_a_reviewer_may_not_point_alerts_at_a_url(
    page, live_server, transactional_db, log_in, reviewer
):
    log_in(reviewer)
    page.get_by_role("link", name="Alerts").click()

    page.get_by_label("Chat webhook").check()
    page.get_by_label("Address or URL").fill("http://10.0.0.5/hook")
    page.get_by_role("button", name="Add").click()

    expect(page.get_by_text("Only an admin can send alerts to a chat room")).to_be_visible()
    assert not Subscription.objects.exists()


def test_a_token_made_on_the_page_reads_the_api_until_it_is_revoked(
    page, live_server, transactional_db, log_in, reviewer
):
    log_in(reviewer)
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("What it is for").fill("support script")
    page.get_by_role("button", name="Create token").click()

    token = page.locator("code", has_text="nwu_").first.inner_text()
    assert token.startswith("nwu_")
    url = live_server.url + "/api/v1/exceptions"
    answer = page.request.get(url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200 and answer.json()["items"] == []

    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_text(token)).to_have_count(0)  # shown once, then only its hint
    page.get_by_role("button", name="Revoke").click()

    refused = page.request.get(url, headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401
