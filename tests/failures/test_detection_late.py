"""Notifications with no final status within their timing window are late."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.failures.detection import detect_late
from notifwatch.failures.models import FailureGroup, Kind, TimingWindow
from notifwatch.failures.windows import Windows, default_window, window_for
from notifwatch.lib.moments import duration_words
from tests.failures.test_detection_builders import event, import_events


@pytest.mark.parametrize(
    "purpose, window",
    [
        ("otp", timedelta(minutes=2)),
        ("login_code", timedelta(minutes=2)),
        ("email_verification", timedelta(minutes=2)),
        ("password_reset", timedelta(minutes=10)),
        ("password_reset_code", timedelta(minutes=10)),
        ("order_confirmation", timedelta(minutes=15)),
        ("payment_receipt", timedelta(minutes=15)),
        ("order_shipped", timedelta(hours=1)),
        ("out_for_delivery_push", timedelta(hours=1)),
        ("ticket_update_sms", timedelta(hours=1)),
        ("invoice_available", timedelta(days=1)),
        ("renewal_reminder_sms", timedelta(days=1)),
        ("spring_sale_campaign", timedelta(days=1)),
        ("promo_code_newsletter", timedelta(days=1)),
        ("review_request", timedelta(days=1)),
        ("appointment_reminder", timedelta(hours=1)),
        ("", timedelta(hours=1)),
    ],
)
def test_default_windows_follow_the_purpose_name(purpose, window):
    assert default_window(purpose) == window


def test_windows_read_like_words():
    assert [duration_words(timedelta(seconds=s)) for s in (120, 3600, 86400, 5400, 45)] == [
        "2 minutes",
        "1 hour",
        "1 day",
        "90 minutes",
        "45 seconds",
    ]


@pytest.mark.django_db
def test_configured_windows_win_most_specific_first(json_source):
    TimingWindow.objects.create(source=None, purpose="", seconds=7200)
    TimingWindow.objects.create(source=json_source, purpose="", seconds=1800)
    TimingWindow.objects.create(source=None, purpose="otp", seconds=60)
    TimingWindow.objects.create(source=json_source, purpose="otp", seconds=30)
    windows = Windows()

    assert windows.window_for(json_source.pk, "otp") == timedelta(seconds=30)
    assert windows.window_for(json_source.pk + 1, "otp") == timedelta(seconds=60)
    assert windows.window_for(json_source.pk, "invoice_available") == timedelta(minutes=30)
    assert window_for(None, "invoice_available") == timedelta(hours=2)


@pytest.mark.django_db
def test_windows_are_read_once_per_pass(json_source, django_assert_num_queries):
    with django_assert_num_queries(1):
        windows = Windows()
        for purpose in ("otp", "order_confirmation", "otp", "order_confirmation"):
            windows.window_for(json_source.pk, purpose)


def pending(key: str, minutes_ago: float, purpose: str, status: str = "sent", **extra):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return event(key, status, at, purpose=purpose, customer_id=f"C-{key}", **extra)


@pytest.mark.django_db
def test_it_flags_notifications_past_their_default_window(json_source):
    import_events(
        json_source,
        [
            pending("otp-late", 3, "login_code", channel="sms", recipient="+14155550118"),
            pending("otp-fresh", 1, "login_code", channel="sms", recipient="+14155550119"),
            pending("ord-late", 16, "order_confirmation"),
            pending("ord-fresh", 14, "order_confirmation"),
            pending("inv-fresh", 600, "invoice_available"),
            pending("ord-deferred", 30, "order_confirmation", status="deferred"),
        ],
    )
    delivered = pending("ord-done", 40, "order_confirmation")
    import_events(
        json_source,
        [delivered, {**delivered, "event_id": "done-2", "status": "delivered"}],
        name="done.jsonl",
    )

    detect_late(timezone.now())

    late = {g.title: g.occurrences for g in FailureGroup.objects.filter(kind=Kind.LATE)}
    assert late == {
        "Login code text messages without an outcome after 2 minutes": 1,
        "Order confirmation emails without an outcome after 15 minutes": 2,
    }
    group = FailureGroup.objects.get(purpose="order_confirmation")
    assert group.detail == {"window_seconds": 900}
    assert group.customers_affected == 2


@pytest.mark.django_db
def test_a_timing_window_overrides_the_default(json_source):
    TimingWindow.objects.create(source=json_source, purpose="order_confirmation", seconds=3600)
    import_events(json_source, [pending("ord-1", 30, "order_confirmation")])

    detect_late(timezone.now())
    assert not FailureGroup.objects.exists()

    detect_late(timezone.now() + timedelta(minutes=31))
    group = FailureGroup.objects.get()
    assert group.title == "Order confirmation emails without an outcome after 1 hour"


@pytest.mark.django_db
def test_a_late_notification_is_counted_once(json_source):
    import_events(json_source, [pending("ord-1", 30, "order_confirmation")])

    first = detect_late(timezone.now())
    again = detect_late(timezone.now() + timedelta(hours=1))

    assert first and not again
    assert FailureGroup.objects.get().occurrences == 1
