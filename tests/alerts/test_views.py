"""The alerts pages: each user's own subscriptions, teams' for admins, every change audited."""

import pytest
from django.core import mail

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import Alert, AlertStatus, Channel, Subscription
from notifwatch.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

EMAIL = {
    "kind": "assigned",
    "channel": "email",
    "target": "",
    "timing": "immediate",
    "scope": "mine",
    "digest_weekday": "0",
    "digest_hour": "8",
    "is_active": "on",
}


def audit_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))


def test_it_sends_anonymous_visitors_to_login_and_refuses_users_without_a_role(
    client, no_role_user
):
    assert client.get("/alerts/")["Location"].startswith("/login/?next=/alerts/")
    client.force_login(no_role_user)
    assert client.get("/alerts/").status_code == 403


def test_a_viewer_adds_an_email_subscription_to_their_own_address(client, viewer):
    client.force_login(viewer)

    response = client.post("/alerts/", EMAIL)

    subscription = Subscription.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/alerts/subscriptions/{subscription.pk}/"
    assert (subscription.user, subscription.channel, subscription.target) == (viewer, "email", "")
    assert audit_actions() == ["subscription.created"]
    assert "your own address" in client.get("/alerts/").content.decode()


def test_it_shows_errors_next_to_the_fields_and_saves_nothing(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/alerts/", {**EMAIL, "channel": "chat", "target": "not a url"})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="field-target"' in page and "Enter the http:// or https:// URL to post to." in page
    assert Subscription.objects.count() == 0 and audit_actions() == []


def test_only_an_admin_makes_notifwatch_post_to_a_url(client, reviewer):
    client.force_login(reviewer)

    response = client.post("/alerts/", {**EMAIL, "channel": "chat", "target": "http://10.0.0.5/"})

    page = response.content.decode()
    assert response.status_code == 200 and 'id="field-channel"' in page
    assert "Only an admin can send alerts to a chat room or webhook URL" in page
    assert Subscription.objects.count() == 0


def test_a_webhook_secret_is_shown_once_then_only_as_a_hint(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/alerts/", {**EMAIL, "channel": "webhook", "target": "http://127.0.0.1:9/in"}
    )

    secret = Subscription.objects.get().secret
    assert secret.startswith("whsec_")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert secret in response.content.decode()
    again = client.get(f"/alerts/subscriptions/{Subscription.objects.get().pk}/").content.decode()
    assert secret not in again and secret[:10] + "…" in again
    assert secret not in str(AuditEntry.objects.get().new)


def test_editing_keeps_the_secret_and_audits_what_changed(client, admin_user):
    subscription = Subscription.objects.create(
        user=admin_user,
        kind="assigned",
        channel=Channel.WEBHOOK,
        target="http://127.0.0.1:9/in",
        secret="whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=",
    )
    client.force_login(admin_user)

    response = client.post(
        f"/alerts/subscriptions/{subscription.pk}/",
        {**EMAIL, "channel": "webhook", "target": "http://127.0.0.1:9/in", "timing": "daily"},
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.timing == "daily"
    assert subscription.secret == "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.old, entry.new) == (
        "subscription.changed",
        {"timing": "immediate"},
        {"timing": "daily"},
    )


def test_others_subscriptions_are_not_found_and_teams_are_for_admins(
    client, viewer, reviewer, admin_user
):
    team = Team.objects.create(name="CRM admins")
    theirs = Subscription.objects.create(user=reviewer, kind="assigned", channel="email")
    teams = Subscription.objects.create(
        team=team, kind="assigned", channel="email", target="crm@example.com"
    )
    client.force_login(viewer)

    assert client.get(f"/alerts/subscriptions/{theirs.pk}/").status_code == 404
    assert (
        client.post(f"/alerts/subscriptions/{theirs.pk}/", {"action": "remove"}).status_code == 404
    )
    assert client.get(f"/alerts/subscriptions/{teams.pk}/").status_code == 403
    assert client.get(f"/alerts/teams/{team.pk}/").status_code == 403
    assert Subscription.objects.count() == 2

    client.force_login(admin_user)
    assert "CRM admins" in client.get("/alerts/").content.decode()
    response = client.post(f"/alerts/teams/{team.pk}/", {**EMAIL, "target": ""})
    assert "A team&#x27;s email alerts need an address." in response.content.decode()
    response = client.post(
        f"/alerts/teams/{team.pk}/", {**EMAIL, "target": "crm-oncall@example.com"}
    )
    assert response.status_code == 302
    assert team.subscriptions.filter(target="crm-oncall@example.com").exists()
    assert client.get(f"/alerts/subscriptions/{teams.pk}/").status_code == 200


def test_a_test_alert_is_recorded_sent_and_audited(client, reviewer):
    reviewer.email = "rita@example.com"
    reviewer.save()
    subscription = Subscription.objects.create(
        user=reviewer, kind="assigned", channel="email", timing="daily"
    )
    client.force_login(reviewer)

    response = client.post(f"/alerts/subscriptions/{subscription.pk}/", {"action": "test"})

    assert response.status_code == 302
    (sent,) = mail.outbox
    assert sent.to == ["rita@example.com"] and sent.subject.startswith("Test alert")
    alert = Alert.objects.get()
    assert alert.key.startswith("assigned:test:") and alert.status == AlertStatus.SENT
    assert audit_actions() == ["subscription.test_sent"]
    assert "Test alert sent." in client.get(response["Location"]).content.decode()


def test_a_failing_test_alert_says_why(client, reviewer):
    subscription = Subscription.objects.create(user=reviewer, kind="assigned", channel="email")
    client.force_login(reviewer)

    response = client.post(
        f"/alerts/subscriptions/{subscription.pk}/", {"action": "test"}, follow=True
    )

    assert "The test alert could not be sent: no email address" in response.content.decode()
    assert Alert.objects.get().status == AlertStatus.PENDING  # the worker retries it


def test_removing_a_subscription_is_audited(client, reviewer):
    subscription = Subscription.objects.create(user=reviewer, kind="silence", channel="email")
    client.force_login(reviewer)

    response = client.post(f"/alerts/subscriptions/{subscription.pk}/", {"action": "remove"})

    assert response["Location"] == "/alerts/"
    assert not Subscription.objects.exists()
    entry = AuditEntry.objects.get()
    assert entry.action == "subscription.removed" and entry.old["kind"] == "silence"
