"""Every read endpoint: a live token of a user with a role, or no answer."""

import pytest
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.api.tokens import create_token, revoke_token
from notifwatch.audit.models import AuditEntry

ENDPOINTS = [
    reverse("api_exceptions"),
    reverse("api_exception", args=[1]),
    reverse("api_notifications") + "?customer_id=cus_1",
    reverse("api_sources"),
]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_it_refuses_a_call_without_a_token(client, db, url):
    response = client.get(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="notifwatch"'
    assert "token" in response.json()["error"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_it_refuses_a_signed_in_session_without_a_token(client, reviewer, url):
    client.force_login(reviewer)

    assert client.get(url).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer nwu_not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "nwu_no-scheme"],
)
def test_it_refuses_a_bad_token(client, viewer, header):
    create_token(viewer, "real one", actor=viewer)

    response = client.get(reverse("api_sources"), HTTP_AUTHORIZATION=header)

    assert response.status_code == 401


def test_it_refuses_a_source_token(client, viewer, json_source):
    # Sources' tokens send events; they read nothing.
    response = client.get(reverse("api_sources"), HTTP_AUTHORIZATION=f"Bearer {json_source.token}")

    assert response.status_code == 401


@pytest.mark.parametrize("url", ENDPOINTS)
def test_it_refuses_a_revoked_token(client, viewer, url):
    issued = create_token(viewer, "old script", actor=viewer)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}
    assert client.get(reverse("api_sources"), **headers).status_code == 200

    revoke_token(issued.token, actor=viewer)

    assert client.get(url, **headers).status_code == 401


def test_it_refuses_the_token_of_a_deactivated_user(client, viewer):
    issued = create_token(viewer, "script", actor=viewer)
    viewer.is_active = False
    viewer.save()

    response = client.get(reverse("api_sources"), HTTP_AUTHORIZATION=f"Bearer {issued.secret}")

    assert response.status_code == 401


@pytest.mark.parametrize("url", ENDPOINTS)
def test_it_answers_403_to_a_user_without_a_role(client, no_role_user, url):
    issued = create_token(no_role_user, "script", actor=no_role_user)

    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {issued.secret}")

    assert response.status_code == 403
    assert "no role" in response.json()["error"]
    assert AuditEntry.objects.filter(action="api.read", actor=no_role_user).get().new == {
        "count": 0,
        "status": 403,
    }


def test_it_stops_answering_when_the_role_is_taken_away(client, viewer):
    issued = create_token(viewer, "script", actor=viewer)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}
    assert client.get(reverse("api_sources"), **headers).status_code == 200

    Membership.objects.filter(user=viewer).delete()

    assert client.get(reverse("api_sources"), **headers).status_code == 403


def test_it_answers_only_get(client, bearer, viewer):
    response = client.post(reverse("api_sources"), **bearer(viewer))

    assert response.status_code == 405
    assert client.put(reverse("api_sources"), **bearer(viewer)).status_code == 405


def test_it_keeps_answers_out_of_shared_caches(client, bearer, viewer):
    response = client.get(reverse("api_sources"), **bearer(viewer))

    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
