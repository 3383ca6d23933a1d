import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifwatch.accounts.masking import mask_recipient
from notifwatch.deliveries import views
from notifwatch.deliveries.lookup import find_notifications
from notifwatch.deliveries.models import Notification

RETRIED = "ord-119001:order_confirmation:email"
DUPLICATE = "ord-119020:order_confirmation:email"
SMS = "tck-55190:ticket_update_sms:sms"
MAILGUN = "ntf_9C0D16:email"


@pytest.fixture
def notifications(imported):
    return imported(
        "01_retry_503_timeout_then_delivered.jsonl",
        "02_duplicate_send_same_idempotency_key.jsonl",
        "03_missing_customer_id.jsonl",
        "07_send_records_for_provider_samples.jsonl",
    )


def search(client, q: str, params: dict | None = None, **headers):
    return client.get(reverse("notification_search"), {"q": q, **(params or {})}, **headers)


def keys(response) -> list[str]:
    return [n.notification_key for n in response.context["notifications"]]


@pytest.mark.parametrize(
    "q, expected",
    [
        ("ORD-2025-119001", RETRIED),  # order id
        ("ord-2025-119001", RETRIED),  # typed in lower case
        ("TCK-55190", SMS),  # ticket id
        ("mFNYICIKGC3gPNGqOvZMVF", RETRIED),  # provider message id of the notification
        ("Qkl_Yi__Ba8xjsPyTc_sHl", DUPLICATE),  # provider message id of an earlier event
        (RETRIED, RETRIED),  # notification key
        ("20250314031000.13e13db194dc726f@mg.harborpine.example", MAILGUN),  # without <>
        ("  ORD-2025-119001  ", RETRIED),
    ],
)
def test_it_finds_one_notification(client, reviewer, notifications, q, expected):
    client.force_login(reviewer)
    response = search(client, q)
    assert response.status_code == 200
    assert keys(response) == [expected]


@pytest.mark.parametrize("q", ["(415) 555-0118", "415.555.0118", "+14155550118"])
def test_it_finds_a_phone_number_as_typed_or_in_e164(client, reviewer, notifications, q):
    client.force_login(reviewer)
    found = keys(search(client, q))
    expected = notifications.filter(recipient="+14155550118")
    assert SMS in found
    assert set(found) == set(expected.values_list("notification_key", flat=True))


def test_it_finds_every_notification_of_a_customer(client, reviewer, notifications):
    client.force_login(reviewer)
    found = keys(search(client, "cus_11690"))
    expected = notifications.filter(customer_id="cus_11690")
    assert len(found) == expected.count() > 3
    assert set(found) == set(expected.values_list("notification_key", flat=True))


def test_it_finds_a_recipient_email_in_any_case(client, reviewer, notifications):
    client.force_login(reviewer)
    found = keys(search(client, "Chloe.Martin@EXAMPLE.com"))
    expected = notifications.filter(recipient="chloe.martin@example.com")
    assert RETRIED in found
    assert set(found) == set(expected.values_list("notification_key", flat=True))


def test_it_lists_newest_activity_first_with_readable_columns(client, reviewer, notifications):
    client.force_login(reviewer)
    response = search(client, "cus_11690")
    found = response.context["notifications"]
    assert [(n.last_event_at, n.pk) for n in found] == sorted(
        [(n.last_event_at, n.pk) for n in found], reverse=True
    )
    content = response.content.decode()
    assert "Order confirmation" in content
    assert "Inhouse" in content
    assert 'class="badge s-delivered">Delivered</span>' in content
    assert reverse("notification_detail", args=[notifications.get(notification_key=RETRIED).pk])


def test_it_shows_the_readable_reason_of_failures(client, reviewer, notifications):
    client.force_login(reviewer)
    content = search(client, "TCK-55190").content.decode()
    assert 'class="badge s-failed">Failed</span>' in content
    sms = notifications.get(notification_key=SMS)
    assert sms.reason_key
    assert unescape(views.reason_by_key(sms.reason_key).sentence) in unescape(content)


def test_it_masks_recipients_for_viewers(client, viewer, notifications):
    client.force_login(viewer)
    content = search(client, "cus_11690").content.decode()
    assert "chloe.martin@example.com" not in content
    assert "c•••@example.com" in content
    content = search(client, "TCK-55190").content.decode()
    assert "+14155550118" not in content
    assert "+1•••••0118" in content


def test_it_shows_recipients_to_reviewers(client, reviewer, notifications):
    client.force_login(reviewer)
    content = search(client, "cus_11690").content.decode()
    assert "chloe.martin@example.com" in content


def test_it_says_when_nothing_matches(client, viewer, notifications):
    client.force_login(viewer)
    content = search(client, "ORD-404").content.decode()
    assert "No notification matches “ORD-404”. Try a customer id, order id" in content


def test_it_escapes_the_query(client, viewer, db):
    client.force_login(viewer)
    content = search(client, "<b>x</b>").content.decode()
    assert "<b>x</b>" not in content
    assert "&lt;b&gt;x&lt;/b&gt;" in content


def test_it_asks_for_a_query_first(client, viewer, db):
    client.force_login(viewer)
    response = client.get(reverse("notification_search"))
    assert response.status_code == 200
    assert response.context["notifications"] == []


def test_it_returns_only_the_results_fragment_to_htmx(client, viewer, notifications):
    client.force_login(viewer)
    response = search(client, "ORD-2025-119001", HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.strip().startswith('<section id="results"')
    assert "<html" not in content
    assert "Order confirmation" in content


def test_it_renders_the_whole_page_for_htmx_history_restore(client, viewer, notifications):
    client.force_login(viewer)
    response = search(
        client, "ORD-2025-119001", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in response.content


def test_it_pages_with_a_keyset_not_offset(client, reviewer, notifications, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    expected = list(
        Notification.objects.filter(customer_id="cus_11690")
        .order_by("-last_event_at", "-id")
        .values_list("notification_key", flat=True)
    )
    client.force_login(reviewer)
    seen: list[str] = []
    response = search(client, "cus_11690")
    with CaptureQueriesContext(connection) as queries:
        while True:
            seen += keys(response)
            older = response.context["older_url"]
            if not older:
                break
            assert "Older →" in response.content.decode()
            response = client.get(reverse("notification_search") + older)
    assert seen == expected
    assert len(expected) > 4
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "OFFSET" not in sql
    assert " LIKE " not in sql


def test_it_ignores_a_broken_cursor(client, reviewer, notifications):
    client.force_login(reviewer)
    response = search(client, "ORD-2025-119001", {"before": "garbage"})
    assert keys(response) == [RETRIED]


def test_it_looks_up_exact_values_only(notifications):
    assert not find_notifications("ORD-2025").exists()
    assert not find_notifications("").exists()
    sql = str(find_notifications("cus_11690").query)
    assert " LIKE " not in sql
    assert re.search(r"\bUNION\b", sql)


@pytest.mark.parametrize(
    "value, masked",
    [
        ("chloe.martin@example.com", "c•••@example.com"),
        ("+14155550118", "+1•••••0118"),
        ("dev_ccffd0b670", "dev•••"),
        ("abc", "•••"),
        ("", ""),
    ],
)
def test_it_masks_recipients(value, masked):
    assert mask_recipient(value) == masked
