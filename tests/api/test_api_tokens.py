"""The API tokens page: create (shown once), see hints, revoke; admins see everyone's."""

import re

from django.urls import reverse

from notifwatch.api.models import ApiToken
from notifwatch.audit.models import AuditEntry
from notifwatch.ingest.credentials import credential_hash

URL = reverse("api_tokens")
REVOKE = reverse("api_token_revoke")
SECRET = re.compile(r"nwu_[\w-]{40,}")


def create(client, name: str = "support desk lookup") -> str:
    response = client.post(URL, {"name": name})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    (secret,) = set(SECRET.findall(response.content.decode()))
    return secret


def test_it_shows_a_new_token_once_and_keeps_only_its_hash(client, viewer):
    client.force_login(viewer)

    secret = create(client)

    token = ApiToken.objects.get()
    assert token.user == viewer and token.name == "support desk lookup"
    assert token.token_hash == credential_hash(secret) and token.hint == secret[-4:]
    again = client.get(URL).content.decode()
    assert secret not in again
    assert f"…{token.hint}" in again and "support desk lookup" in again


def test_the_new_token_reads_the_api_as_its_user(client, viewer):
    client.force_login(viewer)
    secret = create(client)
    client.logout()

    response = client.get(reverse("api_sources"), HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


def test_it_records_creation_and_revocation_in_the_audit_trail(client, viewer):
    client.force_login(viewer)
    secret = create(client)
    token = ApiToken.objects.get()

    response = client.post(REVOKE, {"token": token.pk})

    assert response.status_code == 302 and response["Location"] == URL
    token.refresh_from_db()
    assert token.revoked_at is not None
    created, revoked = AuditEntry.objects.filter(target_type="api.apitoken").order_by("id")
    assert (created.action, created.actor) == ("api.token_created", viewer)
    assert created.new == {"name": "support desk lookup", "user": "victor", "hint": token.hint}
    assert (revoked.action, revoked.actor) == ("api.token_revoked", viewer)
    assert secret not in str(created.new) + created.detail + revoked.detail
    api = client.get(reverse("api_sources"), HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 401


def test_revoking_twice_writes_one_entry(client, viewer):
    client.force_login(viewer)
    create(client)
    token = ApiToken.objects.get()

    client.post(REVOKE, {"token": token.pk})
    client.post(REVOKE, {"token": token.pk})

    assert AuditEntry.objects.filter(action="api.token_revoked").count() == 1


def test_it_refuses_a_token_without_a_name(client, viewer):
    client.force_login(viewer)

    response = client.post(URL, {"name": ""})

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_user_cannot_see_or_revoke_someone_elses_token(client, viewer, reviewer):
    client.force_login(reviewer)
    create(client, "reviewer's script")
    theirs = ApiToken.objects.get()
    client.force_login(viewer)

    page = client.get(URL).content.decode()
    refused = client.post(REVOKE, {"token": theirs.pk})

    assert "reviewer&#x27;s script" not in page and "reviewer's script" not in page
    assert refused.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_an_admin_sees_and_revokes_everyones_tokens(client, viewer, admin_user):
    client.force_login(viewer)
    create(client, "viewer script")
    token = ApiToken.objects.get()
    client.force_login(admin_user)

    page = client.get(URL).content.decode()
    response = client.post(REVOKE, {"token": token.pk})

    assert "viewer script" in page and "victor" in page
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    entry = AuditEntry.objects.get(action="api.token_revoked")
    assert entry.actor == admin_user and entry.new["user"] == "victor"


def test_a_user_without_a_role_gets_no_tokens(client, no_role_user):
    client.force_login(no_role_user)

    assert client.post(URL, {"name": "sneaky"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_the_header_links_to_the_tokens_page(client, viewer):
    client.force_login(viewer)

    assert f'href="{URL}"' in client.get(reverse("preferences")).content.decode()
