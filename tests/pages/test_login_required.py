import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.ingest.models import Outcome, RawEvent, Source

ACTIONS = ["source_mapping", "source_reprocess", "source_rotate_token"]


@pytest.fixture
def page_urls(retried, inhouse_source):
    raw = RawEvent.objects.filter(source=inhouse_source).first()
    slug = inhouse_source.slug
    return [
        reverse("home"),
        reverse("source_list"),
        reverse("source_detail", args=[slug]),
        reverse("source_mapping", args=[slug]),
        reverse("source_reprocess", args=[slug]),
        reverse("source_rotate_token", args=[slug]),
        reverse("raw_event_detail", args=[raw.pk]),
        reverse("notification_search") + "?q=cus_11690",
        reverse("notification_detail", args=[retried.pk]),
    ]


def test_it_sends_anonymous_users_to_login(client, page_urls):
    for url in page_urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_it_shows_the_login_page(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_it_refuses_a_user_without_a_role(client, no_role_user, page_urls):
    client.force_login(no_role_user)
    for url in page_urls:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Your account has no role yet — ask an admin" in response.content.decode()
        # The header offers nothing to navigate to.
        assert reverse("source_list").encode() not in response.content


def test_it_lets_every_read_role_in(client, admin_user, reviewer, viewer, auditor, retried):
    for user in (admin_user, reviewer, viewer, auditor):
        client.force_login(user)
        assert client.get(reverse("home")).status_code == 200
        assert client.get(reverse("notification_detail", args=[retried.pk])).status_code == 200


@pytest.mark.parametrize("role", ["reviewer", "viewer", "auditor"])
@pytest.mark.parametrize("action", ACTIONS)
def test_it_refuses_source_changes_to_non_admins(client, request, role, action, inhouse_source):
    user = request.getfixturevalue(role)
    raw = RawEvent.objects.create(
        source=inhouse_source,
        received_at="2025-03-14T10:00:00Z",
        transport="api",
        body=b"{}",
        content_hash="x",
        outcome=Outcome.QUARANTINED,
    )
    before = Source.objects.values().get(pk=inhouse_source.pk)
    audit_count = AuditEntry.objects.count()
    client.force_login(user)

    response = client.post(
        reverse(action, args=[inhouse_source.slug]), {"mapping": '{"fields": {}}'}
    )

    assert response.status_code == 403
    assert Source.objects.values().get(pk=inhouse_source.pk) == before
    assert AuditEntry.objects.count() == audit_count
    raw.refresh_from_db()
    assert raw.outcome == Outcome.QUARANTINED


def test_it_hides_admin_controls_from_non_admins(client, viewer, inhouse_source):
    client.force_login(viewer)
    content = client.get(reverse("source_detail", args=[inhouse_source.slug])).content.decode()
    assert reverse("source_mapping", args=[inhouse_source.slug]) not in content
    assert reverse("source_reprocess", args=[inhouse_source.slug]) not in content
    assert reverse("source_rotate_token", args=[inhouse_source.slug]) not in content
    assert reverse("admin:index") not in content
