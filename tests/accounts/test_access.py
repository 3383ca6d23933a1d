"""Users pages are for admins only, whatever the request looks like."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry

NON_ADMINS = ["reviewer", "viewer", "auditor", "no_role_user"]


@pytest.fixture
def user_urls(admin_user, viewer):
    return [
        reverse("user_list"),
        reverse("user_new"),
        reverse("user_edit", args=[admin_user.pk]),
        reverse("user_edit", args=[viewer.pk]),
    ]


def test_it_sends_anonymous_users_to_login(client, user_urls):
    for url in [*user_urls, reverse("preferences")]:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login") + "?next="), url


@pytest.mark.parametrize("role", NON_ADMINS)
def test_it_refuses_every_users_page_to_non_admins(client, request, role, user_urls):
    client.force_login(request.getfixturevalue(role))
    for url in user_urls:
        assert client.get(url).status_code == 403, url
        assert client.post(url).status_code == 403, url


@pytest.mark.parametrize("role", NON_ADMINS)
def test_it_refuses_a_forged_create(client, request, role, teams):
    client.force_login(request.getfixturevalue(role))
    users_before = get_user_model().objects.count()

    response = client.post(
        reverse("user_new"),
        {"username": "mallory", "role": "admin", "password1": "", "password2": ""},
    )

    assert response.status_code == 403
    assert get_user_model().objects.count() == users_before
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "viewer", "auditor"])
def test_it_refuses_a_forged_self_promotion(client, request, role, admin_user):
    user = request.getfixturevalue(role)
    client.force_login(user)

    response = client.post(
        reverse("user_edit", args=[user.pk]),
        {"form": "access", "role": "admin", "personal_data_granted": "on", "is_active": "on"},
    )

    assert response.status_code == 403
    assert Membership.objects.get(user=user).role == role
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "viewer", "auditor"])
def test_it_refuses_a_forged_password_change_of_an_admin(client, request, role, admin_user):
    client.force_login(request.getfixturevalue(role))

    response = client.post(
        reverse("user_edit", args=[admin_user.pk]),
        {"form": "password", "password1": "taken-over-2024", "password2": "taken-over-2024"},
    )

    assert response.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.check_password("pw-alice")
    assert not AuditEntry.objects.exists()


def test_it_tells_non_admins_what_role_is_needed(client, viewer):
    client.force_login(viewer)
    content = client.get(reverse("user_list")).content.decode()
    assert "This needs the admin role" in content


def test_it_lets_admins_in(client, admin_user, viewer):
    client.force_login(admin_user)
    assert client.get(reverse("user_list")).status_code == 200
    assert client.get(reverse("user_new")).status_code == 200
    assert client.get(reverse("user_edit", args=[viewer.pk])).status_code == 200


def test_it_404s_for_an_unknown_user(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("user_edit", args=[987654])).status_code == 404
