"""Signing in: throttled (django-axes) per username and address, and audited.

Through the real login form and the admin's, with the real middleware and backends.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory

from notifwatch.accounts.signin import client_address
from notifwatch.audit.models import AuditEntry
from tests.accounts.conftest import audit_text

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-4711"


def sign_in(client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_a_sign_in_is_audited_with_its_address(client, admin_user):
    response = sign_in(client, "alice", "pw-alice", REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 302 and signed_in(client)
    (entry,) = entries("user.login")
    assert (entry.actor, entry.target_id, entry.new) == (
        admin_user,
        str(admin_user.pk),
        {"ip": "198.51.100.7"},
    )


def test_a_failed_sign_in_is_audited_with_the_username_tried_never_the_password(client, admin_user):
    response = sign_in(client, "alice", WRONG)
    sign_in(client, "no-such-user", WRONG)

    assert response.status_code == 200 and not signed_in(client)
    known, unknown = entries("user.login_failed")
    assert (known.target_id, known.target_label, known.actor) == (str(admin_user.pk), "alice", None)
    assert known.new == {"username": "alice", "ip": "127.0.0.1"}
    assert (unknown.target_id, unknown.new["username"]) == ("", "no-such-user")
    assert WRONG not in audit_text(AuditEntry.objects.all())
    assert not entries("user.login")


def test_five_failures_pause_that_username_from_that_address(client, admin_user):
    answers = [sign_in(client, "alice", WRONG).status_code for _ in range(5)]
    locked = sign_in(client, "alice", "pw-alice")  # the right password, too late

    assert answers == [200, 200, 200, 200, 429]
    assert locked.status_code == 429 and not signed_in(client)
    page = locked.content.decode()
    assert "Sign-in paused" in page and "15 minutes" in page and "Traceback" not in page
    assert len(entries("user.login_failed")) == 5  # the refused sixth try is not written
    (lockout,) = entries("user.locked_out")
    assert lockout.actor_label == "system: login throttling"
    assert lockout.new == {"username": "alice", "ip": "127.0.0.1", "failures": 5, "minutes": 15}


def test_the_pause_is_for_that_username_and_address_only(client, admin_user, reviewer):
    for _ in range(5):
        sign_in(client, "alice", WRONG)

    assert sign_in(client, "rita", "pw-rita").status_code == 302
    client.logout()
    assert sign_in(client, "alice", "pw-alice", REMOTE_ADDR="198.51.100.7").status_code == 302


def test_the_pause_ends_after_the_cool_off(client, admin_user):
    for _ in range(5):
        sign_in(client, "alice", WRONG)
    attempt = AccessAttempt.objects.get(username="alice")
    attempt.attempt_time -= timedelta(minutes=16)
    attempt.save()

    assert sign_in(client, "alice", "pw-alice").status_code == 302


def test_a_successful_sign_in_clears_the_count(client, admin_user):
    for _ in range(4):
        sign_in(client, "alice", WRONG)
    assert sign_in(client, "alice", "pw-alice").status_code == 302
    client.logout()

    assert [sign_in(client, "alice", WRONG).status_code for _ in range(4)] == [200] * 4


def test_the_admin_login_is_throttled_and_audited_too(client, admin_user):
    admin_user.is_staff = True
    admin_user.save()
    for _ in range(5):
        response = client.post("/admin/login/", {"username": "alice", "password": WRONG})

    assert response.status_code == 429
    assert len(entries("user.login_failed")) == 5 and len(entries("user.locked_out")) == 1


def test_behind_a_proxy_each_client_address_counts_on_its_own(client, admin_user, settings):
    settings.NOTIFWATCH_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(5):
        # The client may write anything in front; the proxy appends what it saw.
        forged = f"192.0.2.{n}, 203.0.113.5"
        sign_in(client, "alice", WRONG, HTTP_X_FORWARDED_FOR=forged, **proxy)

    assert {e.new["ip"] for e in entries("user.login_failed")} == {"203.0.113.5"}
    assert len(entries("user.locked_out")) == 1
    other = sign_in(client, "alice", "pw-alice", HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert other.status_code == 302


def test_force_login_in_tests_writes_no_sign_in_entry(client, admin_user):
    client.force_login(admin_user)
    assert not entries("user.login")


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.2"),  # no proxy configured: the header is not trusted
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "192.0.2.1, 203.0.113.5", "203.0.113.5"),
        (2, "192.0.2.1, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (2, "203.0.113.5", "10.0.0.2"),  # fewer entries than proxies: a direct call
        (1, "not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_trusts_only_the_proxies_in_front(settings, proxies, forwarded, expected):
    settings.NOTIFWATCH_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_sign_ins_are_not_listed_as_changes_on_the_user_page(client, admin_user, viewer):
    sign_in(client, "victor", WRONG)
    sign_in(client, "victor", "pw-victor")
    client.logout()
    client.force_login(admin_user)

    response = client.get(f"/users/{viewer.pk}/")

    assert [entry.action for entry, _, _ in response.context["changes"]] == []
    assert AuditEntry.objects.filter(target_id=str(viewer.pk), action="user.login").exists()
