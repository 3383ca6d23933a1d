import json

from django.urls import reverse
from django.utils import timezone

from notifwatch.ingest.models import Transport
from notifwatch.ingest.processing import process_raw_event, store_raw


def send(source, *events):
    body = "\n".join(json.dumps(e) for e in events).encode()
    return process_raw_event(store_raw(source, Transport.API, body))


def event(key: str, status: str, **extra) -> dict:
    return {
        "event_id": f"{key}:{status}",
        "occurred_at": timezone.now().isoformat(),
        "notification_key": key,
        "channel": "email",
        "status": status,
        "customer_id": "C-1",
        **extra,
    }


def test_it_counts_the_last_seven_days_by_status(client, viewer, json_source, retried):
    send(
        json_source,
        event("n1", "delivered"),
        event("n2", "delivered"),
        event("n3", "bounced", error_code="5.1.1", provider="sendgrid"),
        event("n4", "sent"),
    )
    send(json_source, {"status": "nonsense"})  # quarantined
    client.force_login(viewer)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    statuses = {value: count for value, _, count in response.context["statuses"]}
    # The retried notification happened in March 2025: outside the window.
    assert statuses["delivered"] == 2
    assert statuses["bounced"] == 1
    assert statuses["pending"] == 1
    assert response.context["total"] == 4
    assert response.context["failures"] == 1
    assert response.context["quarantined"] == 1
    content = response.content.decode()
    assert reverse("notification_search") in content
    assert reverse("source_list") in content


def test_it_shows_zeros_when_nothing_happened(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert response.context["total"] == 0
    assert response.context["failures"] == 0
