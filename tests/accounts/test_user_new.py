import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry
from tests.accounts.conftest import audit_text

STRONG = "correct-horse-battery-42"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def new_user(**fields) -> dict:
    return {"username": "sam", "email": "sam@example.com", "role": "viewer"} | fields


def test_it_shows_the_form(admin_client, teams):
    content = admin_client.get(reverse("user_new")).content.decode()
    for name in ("username", "email", "role", "personal_data_granted", "teams", "password1"):
        assert f'name="{name}"' in content
    assert "Reviewer — Triage, assign, resolve" in content
    assert "CRM admins" in content


def test_it_creates_a_user_with_the_password_given(admin_client, admin_user, teams):
    response = admin_client.post(
        reverse("user_new"),
        new_user(role="auditor", personal_data_granted="on", teams=[teams["Billing"].pk])
        | {"password1": STRONG, "password2": STRONG},
    )

    user = get_user_model().objects.get(username="sam")
    assert response.status_code == 302
    assert response["Location"] == reverse("user_edit", args=[user.pk])
    assert user.email == "sam@example.com"
    assert user.is_active
    membership = Membership.objects.get(user=user)
    assert (membership.role, membership.personal_data_granted) == ("auditor", True)
    assert [t.name for t in user.teams.all()] == ["Billing"]
    entry = AuditEntry.objects.get(action="user.created")
    assert entry.actor == admin_user
    assert entry.target_type == "auth.user"
    assert entry.target_id == str(user.pk)
    assert entry.new == {
        "username": "sam",
        "email": "sam@example.com",
        "role": "auditor",
        "personal_data_granted": True,
        "teams": ["Billing"],
        "is_active": True,
    }
    assert entry.detail == "password chosen by the admin"
    assert STRONG not in audit_text(AuditEntry.objects.all())
    admin_client.logout()
    assert admin_client.login(username="sam", password=STRONG)


def test_it_generates_a_password_and_shows_it_once(admin_client):
    response = admin_client.post(reverse("user_new"), new_user())

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    content = response.content.decode()
    assert "User sam created." in content
    assert "It will not be shown again" in content
    password = re.search(r"<code>([^<]+)</code>", content[content.index("secret-once") :])[1]
    assert len(password) >= 16
    entry = AuditEntry.objects.get(action="user.created")
    assert entry.detail == "password generated"
    assert password not in audit_text(AuditEntry.objects.all())
    # The page it was shown on does not show it again.
    user = get_user_model().objects.get(username="sam")
    assert password not in admin_client.get(reverse("user_edit", args=[user.pk])).content.decode()
    admin_client.logout()
    assert admin_client.login(username="sam", password=password)


def test_it_shows_errors_next_to_their_fields(admin_client):
    response = admin_client.post(reverse("user_new"), {})

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="username-errors"' in content
    assert 'id="role-errors"' in content
    assert not get_user_model().objects.filter(username="").exists()
    assert not AuditEntry.objects.exists()


def test_it_refuses_a_username_taken_in_another_case(admin_client, reviewer):
    response = admin_client.post(reverse("user_new"), new_user(username="RITA"))
    content = response.content.decode()
    assert 'id="username-errors"' in content
    assert "A user with that username already exists." in content
    assert get_user_model().objects.filter(username__iexact="rita").count() == 1


def test_it_refuses_a_bad_username(admin_client):
    content = admin_client.post(reverse("user_new"), new_user(username="sam smith")).content
    assert b'id="username-errors"' in content
    assert not get_user_model().objects.filter(username="sam smith").exists()


def test_it_refuses_the_grant_for_other_roles(admin_client):
    response = admin_client.post(
        reverse("user_new"), new_user(role="viewer", personal_data_granted="on")
    )
    content = response.content.decode()
    assert 'id="personal_data_granted-errors"' in content
    assert "Only auditors can be granted personal data" in content
    assert not get_user_model().objects.filter(username="sam").exists()


def test_it_refuses_passwords_that_differ(admin_client):
    response = admin_client.post(
        reverse("user_new"), new_user(password1=STRONG, password2=STRONG + "x")
    )
    content = response.content.decode()
    assert 'id="password2-errors"' in content
    assert "The two passwords differ." in content
    assert not get_user_model().objects.filter(username="sam").exists()


def test_it_refuses_a_weak_password(admin_client):
    response = admin_client.post(
        reverse("user_new"), new_user(password1="password", password2="password")
    )
    content = response.content.decode()
    assert 'id="password1-errors"' in content
    assert "This password is too common." in content
    # The password typed is never sent back to the browser.
    assert 'value="password"' not in content
    assert not get_user_model().objects.filter(username="sam").exists()
