"""POST /api/v1/events: canonical events with a source's bearer token."""

import json

import pytest
from django.db import OperationalError

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.models import Outcome, RawEvent

pytestmark = pytest.mark.django_db


def event(n=1, **overrides):
    return {
        "event_id": f"evt-{n}",
        "occurred_at": "2025-03-14T10:00:00Z",
        "notification_key": f"inv-{n}",
        "channel": "email",
        "purpose": "invoice_available",
        "status": "delivered",
        "customer_id": "cus_1",
        "recipient": "Pat@Example.com",
        "refs": {"invoice_id": f"INV-{n}"},
        **overrides,
    }


def post(client, source, body, content_type="application/json", token=None):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(
        "/api/v1/events",
        data=data,
        content_type=content_type,
        headers={"Authorization": f"Bearer {token or source.token}"},
    )


def test_it_records_a_single_object(client, json_source):
    response = post(client, json_source, event())
    assert response.status_code == 200
    assert response.json()["recorded"] == 1
    notification = Notification.objects.get(notification_key="inv-1")
    assert (notification.final_status, notification.recipient) == ("delivered", "pat@example.com")


def test_it_records_an_array_and_json_lines(client, json_source):
    assert post(client, json_source, [event(1), event(2)]).json()["recorded"] == 2
    lines = "\n".join(json.dumps(event(n)) for n in (3, 4, 5)) + "\n"
    assert post(client, json_source, lines, "application/x-ndjson").json()["recorded"] == 3
    assert Notification.objects.count() == 5


def test_it_refuses_a_missing_or_wrong_token_with_401(client, json_source):
    assert post(client, json_source, event(), token="nw_wrong").status_code == 401
    assert (
        client.post("/api/v1/events", data="{}", content_type="application/json").status_code == 401
    )
    assert RawEvent.objects.count() == 0


def test_it_names_the_field_and_item_index_and_records_nothing_from_a_bad_batch(
    client, json_source
):
    response = post(
        client,
        json_source,
        [event(1), event(2, occurred_at="last tuesday"), event(3, status="boom")],
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors == [
        {
            "index": 1,
            "field": "occurred_at",
            "message": "'last tuesday' is not an ISO 8601 timestamp",
        },
        {"index": 2, "field": "status", "message": errors[1]["message"]},
    ]
    assert "unknown status value 'boom'" in errors[1]["message"]
    assert Notification.objects.count() == 0
    raw = RawEvent.objects.get()
    assert raw.outcome == Outcome.QUARANTINED and b"last tuesday" in bytes(raw.body)


def test_it_keeps_a_body_that_is_not_json_and_answers_400(client, json_source):
    response = post(client, json_source, "{not json", "application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert RawEvent.objects.get().outcome == Outcome.QUARANTINED


def test_it_counts_a_reposted_event_once(client, json_source):
    post(client, json_source, [event(1)])
    response = post(client, json_source, [event(1)])

    assert response.json()["status"] == "duplicate"
    assert DeliveryEvent.objects.get().duplicate_count == 1
    notification = Notification.objects.get()
    assert (notification.event_count, notification.duplicate_events) == (1, 1)


def test_it_refuses_a_body_over_the_limit_with_413(client, json_source, settings):
    settings.NOTIFWATCH_MAX_BODY_BYTES = 1000
    response = post(client, json_source, [event(n) for n in range(20)])
    assert response.status_code == 413
    assert RawEvent.objects.count() == 0


def test_it_answers_503_with_retry_after_when_the_database_is_unavailable(
    client, json_source, monkeypatch
):
    def database_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("notifwatch.ingest.views.store_raw", database_down)
    response = post(client, json_source, event())
    assert response.status_code == 503
    assert response["Retry-After"] == "30"


def test_it_settles_events_that_arrive_out_of_order(client, json_source):
    post(client, json_source, event(1, event_id="b", occurred_at="2025-03-14T10:05:00Z"))
    post(
        client,
        json_source,
        event(1, event_id="a", status="sent", occurred_at="2025-03-14T10:00:00Z"),
    )
    notification = Notification.objects.get()
    assert notification.final_status == "delivered"
    assert notification.event_count == 2


def test_it_accepts_the_same_canonical_events_on_the_source_webhook(client, json_source):
    response = client.post(
        "/hooks/billing/",
        data=json.dumps(event()),
        content_type="application/json",
        headers={"Authorization": f"Bearer {json_source.token}"},
    )
    assert response.status_code == 200
    rejected = client.post("/hooks/billing/", data="{}", content_type="application/json")
    assert rejected.status_code == 401
    assert RawEvent.objects.filter(outcome=Outcome.REJECTED).count() == 1
