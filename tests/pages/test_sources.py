from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import RawEvent, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw


def test_it_shows_endpoints_credential_hint_and_counts(client, viewer, imported, settings):
    imported("01_retry_503_timeout_then_delivered.jsonl", "05_malformed_and_edge_lines.jsonl")
    client.force_login(viewer)

    response = client.get(reverse("source_list"))

    assert response.status_code == 200
    content = response.content.decode()
    assert f"{settings.NOTIFWATCH_BASE_URL}/hooks/inhouse/" in content
    assert f"{settings.NOTIFWATCH_BASE_URL}/api/v1/events" in content
    (facts,) = response.context["facts"]
    assert facts.source.credential_hint in content
    raws = RawEvent.objects.filter(source=facts.source)
    assert facts.by_outcome == {
        outcome: raws.filter(outcome=outcome).count()
        for outcome in ("parsed", "ignored", "quarantined")
    }
    assert facts.quarantined == 9
    assert facts.notifications == Notification.objects.filter(source=facts.source).count() == 3
    assert facts.last_received == raws.latest("received_at").received_at
    assert "9 quarantined" in content


def test_it_never_shows_the_token(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    content = client.get(reverse("source_list")).content.decode()
    assert inhouse_source.token not in content
    assert inhouse_source.credential_hint in content


def test_it_shows_no_api_url_for_provider_kinds(client, viewer, db):
    save_source(slug="sg", kind="sendgrid", secret="hooks:pw-long-enough")
    client.force_login(viewer)
    content = client.get(reverse("source_list")).content.decode()
    assert "/hooks/sg/" in content
    assert "/api/v1/events" not in content


def test_it_shows_an_empty_state(client, viewer):
    client.force_login(viewer)
    assert "No sources yet" in client.get(reverse("source_list")).content.decode()


def test_it_uses_the_same_number_of_queries_for_many_sources(
    client, viewer, json_source, django_assert_max_num_queries
):
    def add_source_with_events(slug: str) -> None:
        source = save_source(slug=slug, kind="json").source
        body = (
            b'{"event_id": "e1", "occurred_at": "2025-03-14T10:00:00Z", '
            b'"notification_key": "k1", "status": "delivered"}'
        )
        process_raw_event(store_raw(source, Transport.API, body))
        process_raw_event(store_raw(source, Transport.API, b'{"status": "?"}'))

    add_source_with_events("one")
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as one_source:
        assert client.get(reverse("source_list")).status_code == 200

    for n in range(6):
        add_source_with_events(f"more-{n}")
    with django_assert_max_num_queries(len(one_source)):
        response = client.get(reverse("source_list"))
    assert len(response.context["facts"]) == 8
    assert all(
        f.notifications == 1 for f in response.context["facts"] if f.source.slug != "billing"
    )


def test_it_shows_rejected_calls_with_the_last_reason(client, admin_user, json_source):
    for _ in range(3):
        client.post(
            "/hooks/billing/",
            data="{}",
            content_type="application/json",
            headers={"Authorization": "Bearer nw_rotated_long_ago"},
        )
    client.force_login(admin_user)

    page = client.get("/sources/").content.decode()

    assert "3 rejected calls since" in page
    assert "last reason: missing or wrong bearer token" in page
