"""No stable customer id, callbacks that match no send record, one address for several ids."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.deliveries.models import Notification
from notifwatch.deliveries.recording import PendingEvent, record_events
from notifwatch.failures.detection import detect_identity
from notifwatch.failures.models import FailureGroup, Fingerprint, Kind
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.canonical import CanonicalEvent
from tests.failures.test_detection_builders import event, import_events

pytestmark = pytest.mark.django_db


def detect():
    return detect_identity(timezone.now() - timedelta(days=3650))


def test_it_groups_notifications_without_a_customer_id_by_source_and_purpose(imported):
    notifications = imported("03_missing_customer_id.jsonl")
    missing = notifications.filter(identity_problem="missing_customer_id")
    purposes = set(missing.values_list("purpose", flat=True))

    detect()

    groups = FailureGroup.objects.filter(kind=Kind.IDENTITY)
    assert {g.purpose for g in groups} == purposes
    assert sum(g.occurrences for g in groups) == missing.count()
    assert "Order shipped sent without a customer id by Inhouse" in {g.title for g in groups}


def test_it_groups_callbacks_that_match_no_send_record_by_source(db):
    twilio = save_source(slug="twilio", kind="twilio", secret="token").source
    at = timezone.now() - timedelta(hours=1)
    orphans = [
        PendingEvent(
            CanonicalEvent(
                event_id=f"cb-{n}",
                occurred_at=at,
                notification_key=f"SM{n:032d}",
                status="delivered",
                channel="sms",
                recipient=f"+1415555010{n}",
                provider="twilio",
                provider_message_id=f"SM{n:032d}",
            ),
            raw_event_id=None,
            join_by_message_id=True,
        )
        for n in range(3)
    ]
    record_events(twilio.pk, orphans)
    assert Notification.objects.filter(identity_problem="unmatched_callback").count() == 3

    detect()

    group = FailureGroup.objects.get()
    assert group.title == "Twilio: delivery reports that match no send record"
    assert (group.source, group.occurrences, group.fix_owner) == (twilio, 3, "our_setup")


def test_it_finds_one_address_used_by_several_customer_ids(json_source):
    at = timezone.now() - timedelta(hours=2)
    shared = "family@example.com"
    import_events(
        json_source,
        [
            event("k-1", "delivered", at, customer_id="C-1", recipient=shared),
            event("k-2", "delivered", at, customer_id="C-2", recipient=shared),
            event("k-3", "delivered", at, customer_id="C-2", recipient=shared),
            event("k-4", "delivered", at, customer_id="C-4", recipient="solo@example.com"),
            event("k-5", "delivered", at, customer_id="C-4", recipient="solo@example.com"),
        ],
    )

    detect()

    group = FailureGroup.objects.get()
    assert group.title == "One address used by 2 customer ids: f•••@example.com"
    assert group.detail == {"recipient": "f•••@example.com", "customer_ids": ["C-1", "C-2"]}
    assert (group.occurrences, group.customers_affected) == (3, 2)
    # Personal data stays out of the fingerprint.
    assert shared not in Fingerprint.objects.get().value


def test_a_third_customer_on_a_shared_address_updates_the_title(json_source):
    at = timezone.now() - timedelta(hours=2)
    shared = "+14155550118"
    sms = {"channel": "sms", "recipient": shared, "purpose": "login_code"}
    import_events(
        json_source,
        [
            event("k-1", "delivered", at, customer_id="C-1", **sms),
            event("k-2", "delivered", at, customer_id="C-2", **sms),
        ],
    )
    detect()

    import_events(
        json_source, [event("k-3", "delivered", at, customer_id="C-3", **sms)], name="b.jsonl"
    )
    detect()

    group = FailureGroup.objects.get()
    assert group.title == "One address used by 3 customer ids: +1•••••0118"
    assert group.detail["customer_ids"] == ["C-1", "C-2", "C-3"]


def test_identity_passes_are_idempotent(imported, json_source):
    imported("03_missing_customer_id.jsonl")
    at = timezone.now() - timedelta(hours=2)
    import_events(
        json_source,
        [
            event("k-1", "delivered", at, customer_id="C-1", recipient="x@example.com"),
            event("k-2", "delivered", at, customer_id="C-2", recipient="x@example.com"),
        ],
    )
    assert detect()

    assert not detect()
