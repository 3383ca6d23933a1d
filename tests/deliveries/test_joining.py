"""Provider callbacks join the send record that carries their provider message id."""

from datetime import UTC, datetime, timedelta

import pytest

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.deliveries.recording import PendingEvent, record_events
from notifwatch.failures.models import UnknownCode
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.canonical import CanonicalEvent

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def sender(db):
    return save_source(slug="shop", kind="json").source


@pytest.fixture
def provider(db):
    return save_source(slug="sg", kind="sendgrid", secret="u:p").source


def send_record(key, message_id, recipient="ann@example.com", **extra):
    return PendingEvent(
        CanonicalEvent(
            event_id=f"send-{key}-{recipient}",
            occurred_at=T0,
            notification_key=key,
            status="sent",
            channel="email",
            purpose="order_shipped",
            customer_id="C-1",
            recipient=recipient,
            provider="sendgrid",
            provider_message_id=message_id,
            refs={"order_id": "O-1"},
            **extra,
        ),
        raw_event_id=None,
    )


def callback(
    event_id, message_id, status="delivered", minutes=5, recipient="ann@example.com", **extra
):
    return PendingEvent(
        CanonicalEvent(
            event_id=event_id,
            occurred_at=T0 + timedelta(minutes=minutes),
            notification_key=message_id,
            status=status,
            channel="email",
            recipient=recipient,
            provider="sendgrid",
            provider_message_id=message_id,
            **extra,
        ),
        raw_event_id=None,
        join_by_message_id=True,
    )


def test_it_attaches_a_callback_to_the_send_record_of_another_source(sender, provider):
    record_events(sender.pk, [send_record("ntf_1:email", "msg-1")])

    record_events(provider.pk, [callback("cb-1", "msg-1")])

    notification = Notification.objects.get()
    assert notification.source == sender
    assert (notification.final_status, notification.customer_id) == ("delivered", "C-1")
    assert DeliveryEvent.objects.get(event_id="cb-1").source == provider


def test_it_keeps_an_unmatched_callback_and_flags_it(provider):
    record_events(provider.pk, [callback("cb-1", "msg-9", status="bounced", error_code="5.1.1")])

    orphan = Notification.objects.get()
    assert orphan.source == provider
    assert orphan.callback_only
    assert orphan.identity_problem == "unmatched_callback"
    assert (orphan.final_status, orphan.reason_category) == ("bounced", "invalid_address")


def test_it_moves_early_callbacks_onto_the_send_record_when_it_arrives(sender, provider):
    record_events(
        provider.pk, [callback("cb-1", "msg-1"), callback("cb-0", "msg-1", "processed", 1)]
    )
    assert Notification.objects.get().callback_only

    record_events(sender.pk, [send_record("ntf_1:email", "msg-1")])

    notification = Notification.objects.get()
    assert notification.source == sender and not notification.callback_only
    assert notification.event_count == 3
    assert (notification.final_status, notification.identity_problem) == ("delivered", "")


def test_it_joins_each_recipient_of_a_message_to_several_people(sender, provider):
    record_events(
        sender.pk,
        [
            send_record("ntf_8:email:ann@example.com", "msg-8", "ann@example.com"),
            send_record("ntf_8:email:bob@example.com", "msg-8", "bob@example.com"),
        ],
    )

    record_events(
        provider.pk,
        [
            callback("cb-a", "msg-8", recipient="ann@example.com"),
            callback("cb-b", "msg-8", "bounced", recipient="bob@example.com", error_code="5.1.1"),
        ],
    )

    statuses = dict(Notification.objects.values_list("recipient", "final_status"))
    assert statuses == {"ann@example.com": "delivered", "bob@example.com": "bounced"}


def test_it_counts_codes_the_catalog_does_not_know(provider):
    record_events(
        provider.pk,
        [
            callback("cb-1", "m1", "bounced", error_code="Z-99", error_message="weird"),
            callback("cb-2", "m2", "bounced", error_code="Z-99", error_message="weird"),
        ],
    )
    record_events(provider.pk, [callback("cb-3", "m3", "bounced", error_code="Z-99")])

    unknown = UnknownCode.objects.get(provider="sendgrid", code="Z-99")
    assert unknown.occurrences == 3
    assert unknown.sample_message == "weird"
