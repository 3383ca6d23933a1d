import json

import pytest
from django.urls import reverse

from notifwatch.deliveries.models import Notification
from notifwatch.failures.reasons import reason_by_key
from notifwatch.ingest.importer import import_path
from notifwatch.ingest.models import Transport
from notifwatch.ingest.processing import process_raw_event, store_raw


def page(client, notification: Notification) -> str:
    response = client.get(reverse("notification_detail", args=[notification.pk]))
    assert response.status_code == 200
    return response.content.decode()


def push(source, fixture_path, name: str) -> Notification:
    body = fixture_path("push", name).read_bytes()
    raw = process_raw_event(store_raw(source, Transport.API, body))
    return Notification.objects.get(events__raw_event=raw)


def test_it_answers_delivered_on_the_third_attempt(client, viewer, retried):
    client.force_login(viewer)
    content = page(client, retried)
    assert "Delivered on the 3rd attempt, Mar 14 10:01" in content


def test_it_answers_delivered_on_the_first_attempt(client, viewer, push_source, fixture_path):
    notification = push(push_source, fixture_path, "01_fcm_success.json")
    client.force_login(viewer)
    assert "Delivered on the first attempt, Mar 14 15:30" in page(client, notification)


def test_it_explains_a_failure_and_who_can_fix_it(client, reviewer, push_source, fixture_path):
    notification = push(push_source, fixture_path, "02_fcm_unregistered_404.json")
    reason = reason_by_key(notification.reason_key)
    client.force_login(reviewer)

    content = page(client, notification)

    assert notification.final_status == "failed"
    assert f"Not delivered: {reason.sentence}".replace("'", "&#x27;") in content
    assert reason.action.replace("'", "&#x27;") in content
    assert "Who can fix it" in content
    assert "UNREGISTERED — Requested entity was not found." in content


def test_it_says_a_deferral_is_still_being_retried(client, viewer, push_source, fixture_path):
    notification = push(push_source, fixture_path, "06_fcm_quota_exceeded_429.json")
    client.force_login(viewer)
    content = page(client, notification)
    assert "Not delivered yet:" in content
    assert "Still being retried (attempt 1)." in content


def test_it_shows_the_identity_problem_with_a_way_to_look_it_up(client, viewer, imported):
    notifications = imported("03_missing_customer_id.jsonl")
    client.force_login(viewer)
    by_order = notifications.get(notification_key="ord-119033:order_shipped:email")
    assert "No customer id — look it up by order ORD-2025-119033" in page(client, by_order)
    by_ticket = notifications.get(notification_key="tck-55190:ticket_update_sms:sms")
    assert "No customer id — look it up by ticket TCK-55190" in page(client, by_ticket)


def test_it_shows_duplicate_sends(client, viewer, imported):
    notification = imported("02_duplicate_send_same_idempotency_key.jsonl").get()
    client.force_login(viewer)
    assert "Sent 2 times — the customer got it twice" in page(client, notification)


def test_it_lists_the_timeline_in_event_time_order(
    client, reviewer, inhouse_source, fixture_path, tmp_path
):
    lines = fixture_path("inhouse", "01_retry_503_timeout_then_delivered.jsonl").read_text()
    arrived_backwards = tmp_path / "backwards.jsonl"
    arrived_backwards.write_text("\n".join(reversed(lines.splitlines())) + "\n")
    import_path(inhouse_source, str(arrived_backwards))
    notification = Notification.objects.get(source=inhouse_source)
    client.force_login(reviewer)

    content = page(client, notification)

    positions = [content.index(f"attempt {n}\n") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert content.index("Mar 14, 10:00:00") < content.index("Mar 14, 10:01:31")
    assert "The provider&#x27;s service was temporarily unavailable." in content
    assert "ETIMEDOUT — POST /v3/mail/send timed out" in content
    assert "Delivered on the 3rd attempt" in content


def test_it_counts_repeated_reports(client, reviewer, json_source):
    event = {
        "event_id": "e1",
        "occurred_at": "2025-03-14T10:00:00Z",
        "notification_key": "k1",
        "status": "delivered",
    }
    for _ in range(3):
        process_raw_event(store_raw(json_source, Transport.WEBHOOK, json.dumps(event).encode()))
    client.force_login(reviewer)
    assert "Received 2 more times" in page(client, Notification.objects.get())


def test_it_shows_recipient_and_payload_to_reviewers(client, reviewer, retried):
    client.force_login(reviewer)
    content = page(client, retried)
    assert "chloe.martin@example.com" in content
    assert "<summary>Raw payload" in content
    assert "&quot;trace_id&quot;: &quot;d4f38804c604d283&quot;" in content


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_it_masks_personal_data_without_the_grant(client, request, role, imported):
    notification = imported("03_missing_customer_id.jsonl").get(
        notification_key="tck-55190:ticket_update_sms:sms"
    )
    client.force_login(request.getfixturevalue(role))

    content = page(client, notification)

    # The provider's error text quotes the number: masked there too.
    assert "+14155550118" not in content
    assert "+1•••••0118" in content
    assert "Raw payload hidden: it contains personal data" in content
    assert "&quot;trace_id&quot;" not in content


def test_it_escapes_what_the_source_sent(client, reviewer, json_source):
    script = "<script>alert(1)</script>"
    event = {
        "event_id": "e1",
        "occurred_at": "2025-03-14T10:00:00Z",
        "notification_key": "k1",
        "purpose": script,
        "status": "failed",
        "error_code": script,
        "error_message": script,
        "refs": {"order_id": script},
    }
    process_raw_event(store_raw(json_source, Transport.API, json.dumps(event).encode()))
    client.force_login(reviewer)

    content = page(client, Notification.objects.get())

    assert script not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_it_404s_for_an_unknown_notification(client, viewer, db):
    client.force_login(viewer)
    assert client.get(reverse("notification_detail", args=[999])).status_code == 404


# A megabyte in a sender's text field: one run of address characters (quadratic for the old
# masking, which ran a page for a minute until its worker was killed).
PLANTED = "for ana.ruiz@example.com: " + "+1" * 500_000


@pytest.fixture
def planted(json_source) -> Notification:
    """A bounce whose error message and an extra field of its record hold a megabyte each."""
    sent = {
        "event_id": "e1",
        "occurred_at": "2025-03-14T10:00:00Z",
        "notification_key": "k1",
        "status": "sent",
        "recipient": "ana.ruiz@example.com",
    }
    bounced = sent | {
        "event_id": "e2",
        "status": "bounced",
        "error_code": "550",
        "error_message": PLANTED,
        "note": PLANTED,
    }
    body = json.dumps([sent, bounced]).encode()
    assert process_raw_event(store_raw(json_source, Transport.API, body)).outcome == "parsed"
    # Stored messages are cut at 1,000 characters; the page must not depend on it (rows stored
    # before that, or by another way in).
    notification = Notification.objects.get()
    notification.events.filter(event_id="e2").update(error_message=PLANTED)
    Notification.objects.update(error_message=PLANTED)
    return notification


def test_it_shows_a_viewer_the_masked_start_of_a_megabyte_message(client, viewer, planted):
    client.force_login(viewer)
    content = page(client, planted)
    assert "ana.ruiz@example.com" not in content
    # The verdict and the timeline; the run is left out whole, not cut in two.
    assert content.count("for a•••@example.com: … [1,000,001 more characters not shown]") == 2
    assert "+1+1" not in content
    assert len(content) < 50_000


def test_it_shows_a_reviewer_the_start_of_a_megabyte_payload(client, reviewer, planted):
    client.force_login(reviewer)
    content = page(client, planted)
    assert content.count("for ana.ruiz@example.com: +1+1") == 3  # verdict, timeline, payload
    assert content.count("more characters not shown]") == 3
    assert len(content) < 100_000
