"""The same customer got the same notification more than once, and why when it can be told."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.deliveries.models import Notification
from notifwatch.failures.detection import detect_duplicate_sends
from notifwatch.failures.models import FailureGroup, Kind
from tests.failures.test_detection_builders import event, import_events

pytestmark = pytest.mark.django_db
SINCE = timedelta(days=8)


def detect():
    return detect_duplicate_sends(timezone.now() - SINCE)


def delivered(key: str, at, **extra) -> list[dict]:
    return [
        event(key, "sent", at, **extra),
        event(key, "delivered", at + timedelta(seconds=8), **extra),
    ]


def test_it_tells_two_workers_sending_one_key(imported, inhouse_source):
    # The fixture's dates are in March 2025: look back far enough to see them.
    imported("02_duplicate_send_same_idempotency_key.jsonl")

    detect_duplicate_sends(timezone.now() - timedelta(days=3650))

    group = FailureGroup.objects.get(kind=Kind.DUPLICATE_SEND)
    assert group.title == (
        "Order confirmation emails delivered more than once: two workers sent the same notification"
    )
    assert group.detail == {"cause": "two workers", "how": ["same key delivered twice"]}
    assert (group.occurrences, group.customers_affected) == (1, 1)
    assert group.source == inhouse_source


def test_it_tells_a_retry_after_a_timeout_that_had_succeeded(json_source):
    at = timezone.now() - timedelta(hours=1)
    key = "ord-5:order_confirmation:email"
    import_events(
        json_source,
        [
            event(
                key,
                "failed",
                at,
                attempt=1,
                retryable=True,
                error_code="ETIMEDOUT",
                error_message="POST /v3/mail/send timed out after 10000 ms (no response)",
            ),
            # The provider had taken the first call after all, and reports its delivery.
            event(key, "delivered", at + timedelta(seconds=20), provider_message_id="msg-A"),
            event(
                key, "delivered", at + timedelta(seconds=45), attempt=2, provider_message_id="msg-B"
            ),
        ],
    )
    assert Notification.objects.get().duplicate_sends == 1

    detect()

    group = FailureGroup.objects.get()
    assert group.detail["cause"] == "retry after a timeout that had succeeded"
    assert group.title.endswith(
        "delivered more than once: retried after a timeout although the first attempt had "
        "gone through"
    )


def test_it_tells_a_re_run_import(json_source):
    at = timezone.now() - timedelta(hours=3)
    refs = {"refs": {"invoice_id": "INV-7"}, "purpose": "invoice_available", "customer_id": "C-7"}
    import_events(json_source, delivered("run-1:inv-7", at, **refs), name="invoices-a.jsonl")
    import_events(
        json_source,
        delivered("run-2:inv-7", at + timedelta(minutes=4), **refs),
        name="invoices-b.jsonl",
    )

    detect()

    group = FailureGroup.objects.get()
    assert group.detail == {"cause": "re-run import", "how": ["two keys"]}
    assert group.title == (
        "Invoice available emails delivered more than once: an import was run again under new keys"
    )
    assert (group.occurrences, group.customers_affected) == (2, 1)


def test_the_same_references_on_two_channels_count_with_an_unknown_cause(json_source):
    at = timezone.now() - timedelta(hours=3)
    refs = {"refs": {"order_id": "O-1"}, "customer_id": "C-1"}
    import_events(
        json_source,
        delivered("o-1:email", at, **refs)
        + delivered(
            "o-1:sms", at + timedelta(minutes=1), channel="sms", recipient="+14155550118", **refs
        ),
    )

    detect()

    group = FailureGroup.objects.get()
    assert group.detail == {"cause": "unknown", "how": ["two channels"]}
    assert group.channel == ""
    assert group.title == "Order confirmation messages delivered more than once: cause unknown"


def test_it_leaves_out_sends_far_apart_failed_or_numbered_as_a_series(json_source):
    at = timezone.now() - timedelta(hours=5)
    order = {"refs": {"order_id": "O-2"}, "customer_id": "C-2"}
    ticket = {"refs": {"ticket_id": "T-9"}, "customer_id": "C-3", "purpose": "ticket_reply"}
    import_events(
        json_source,
        delivered("o-2:a", at, **order)
        + delivered("o-2:b", at + timedelta(minutes=30), **order)
        + delivered("t-9:ticket_reply:email:3", at, **ticket)
        + delivered("t-9:ticket_reply:email:4", at + timedelta(minutes=2), **ticket)
        + [
            event("o-3:a", "delivered", at, refs={"order_id": "O-3"}, customer_id="C-4"),
            event("o-3:b", "bounced", at, refs={"order_id": "O-3"}, customer_id="C-4"),
        ],
    )

    detect()

    assert not FailureGroup.objects.exists()


def test_repeated_provider_callbacks_are_not_duplicate_sends(json_source):
    at = timezone.now() - timedelta(hours=1)
    report = event("k-1", "delivered", at, provider_message_id="msg-1")
    import_events(json_source, [event("k-1", "sent", at), report])
    # The provider posts the same report again (same event id, re-serialised).
    import_events(json_source, [{**report, "retry": 1}], name="retry.jsonl")
    assert Notification.objects.get().duplicate_events == 1

    detect()

    assert not FailureGroup.objects.exists()


def test_pairs_are_counted_once(json_source):
    at = timezone.now() - timedelta(hours=3)
    refs = {"refs": {"order_id": "O-5"}, "customer_id": "C-5"}
    import_events(json_source, delivered("a:o-5", at, **refs) + delivered("b:o-5", at, **refs))

    assert detect()
    assert not detect()
    assert FailureGroup.objects.get().occurrences == 2
