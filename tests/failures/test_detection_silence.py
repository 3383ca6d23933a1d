"""A source, or a purpose within it, stopped reporting while it normally would."""

from datetime import UTC, datetime, timedelta

import pytest

from notifwatch.failures.detection import detect_silence
from notifwatch.failures.explain import explain
from notifwatch.failures.models import FailureGroup, Kind, Occurrence
from notifwatch.ingest.actions import save_source
from tests.failures.test_detection_builders import (
    arrivals,
    arrive_as_logged,
    event,
    import_events,
)

pytestmark = pytest.mark.django_db

# A Friday afternoon (TIME_ZONE is UTC in tests).
TOP = datetime(2025, 3, 14, 14, 0, tzinfo=UTC)
NOW = TOP + timedelta(minutes=20)


def hours(start: datetime, end: datetime, every: int = 1) -> list[datetime]:
    found = []
    while start < end:
        found.append(start)
        start += timedelta(hours=every)
    return found


@pytest.fixture
def postmark(db):
    return save_source(slug="postmark", kind="postmark", secret="hook:secret").source


def test_a_sender_that_stopped_is_silent(json_source):
    arrivals(json_source, hours(TOP - timedelta(days=6), TOP - timedelta(hours=5)), per_hour=10)

    detect_silence(NOW)

    group = FailureGroup.objects.get()
    assert group.kind == Kind.SILENCE
    assert group.title == ("Billing sender: nothing received (usually about 30 events in 3 hours)")
    assert group.detail["mode"] == "stopped_sending"
    assert group.fix_owner == "our_setup"
    # Every hour since the last arrival (08:54) is silent, not only the three judged: the
    # exception's first seen is when the silence began.
    subjects = sorted(Occurrence.objects.values_list("subject", flat=True))
    assert subjects == [f"billing:2025-03-14T{h:02}:00:00+00:00" for h in range(9, 14)]
    assert group.first_seen == TOP.replace(hour=9)
    assert group.detail["last_seen"].startswith("2025-03-14T08:54")


def test_a_provider_that_stopped_reporting_while_sends_go_on(postmark, json_source):
    arrivals(postmark, hours(TOP - timedelta(days=6), TOP - timedelta(hours=5)), per_hour=10)
    at = TOP - timedelta(hours=2)
    sends = [
        event(
            f"k-{n}", "sent", at + timedelta(minutes=n), provider="postmark", customer_id=f"C-{n}"
        )
        for n in range(12)
    ]
    import_events(json_source, sends)
    arrive_as_logged(json_source)

    detect_silence(NOW)

    group = FailureGroup.objects.get(source=postmark)
    assert group.title == (
        "Postmark stopped reporting: 12 of 12 emails sent through it since its last report "
        "have no outcome"
    )
    assert group.detail["mode"] == "provider_stopped_reporting"
    assert group.detail["sent_meanwhile"] == 12
    assert group.detail["without_outcome"] == 12
    assert group.fix_owner == "provider"


def test_a_provider_that_stopped_reporting_counts_the_sends_left_without_an_outcome(
    postmark, json_source
):
    arrivals(postmark, hours(TOP - timedelta(days=6), TOP - timedelta(hours=5)), per_hour=10)
    at = TOP - timedelta(hours=2)
    sends = [
        event(
            f"k-{n}", "sent", at + timedelta(minutes=n), provider="postmark", customer_id=f"C-{n}"
        )
        for n in range(12)
    ]
    # The sender itself heard back about three of them (its own API call failed).
    outcomes = [
        event(
            f"k-{n}",
            "failed",
            at + timedelta(minutes=n, seconds=30),
            provider="postmark",
            customer_id=f"C-{n}",
            error_code="503",
        )
        for n in range(3)
    ]
    import_events(json_source, sends + outcomes)
    arrive_as_logged(json_source)

    detect_silence(NOW)

    group = FailureGroup.objects.get(source=postmark)
    assert group.title == (
        "Postmark stopped reporting: 9 of 12 emails sent through it since its last report "
        "have no outcome"
    )
    assert group.detail["without_outcome"] == 9
    # Its impact is the people those sends were for: nobody knows yet whether they got them.
    assert (group.customers_affected, group.customers_not_reached) == (9, 9)
    facts = {label: text for label, text, _ in explain(group, personal=False).facts}
    assert facts["Sent meanwhile"] == "12 through this provider"
    assert facts["Without an outcome"].startswith("9 of them, for 9 people")


def test_a_provider_nothing_was_sent_through_is_told_apart(postmark):
    arrivals(postmark, hours(TOP - timedelta(days=6), TOP - timedelta(hours=5)), per_hour=10)

    detect_silence(NOW)

    group = FailureGroup.objects.get()
    assert group.detail["mode"] == "stopped_sending"
    assert group.title.endswith(", and nothing was sent through it either")


def test_a_source_that_reports_normally_is_not_silent(json_source):
    arrivals(json_source, hours(TOP - timedelta(days=6), TOP), per_hour=10)

    detect_silence(NOW)

    assert not FailureGroup.objects.exists()


def test_far_fewer_than_expected_is_silence_too(json_source):
    arrivals(json_source, hours(TOP - timedelta(days=6), TOP - timedelta(hours=3)), per_hour=20)
    arrivals(json_source, [TOP - timedelta(hours=2)], per_hour=2)

    detect_silence(NOW)

    group = FailureGroup.objects.get()
    assert group.title == "Billing sender: only 2 events in the last 3 hours, about 60 expected"


def test_quiet_hours_it_is_always_quiet_in_are_not_silence(json_source):
    evening = TOP.replace(hour=20)
    office = [h for h in hours(TOP - timedelta(days=6), evening) if 9 <= h.hour < 17]
    arrivals(json_source, office, per_hour=10)

    detect_silence(evening + timedelta(minutes=20))

    assert not FailureGroup.objects.exists()


def test_a_quiet_source_is_judged_over_its_silent_stretch(json_source):
    # Six a day: too few for three hours to say anything, plenty for a whole day.
    arrivals(json_source, hours(TOP - timedelta(days=6), TOP - timedelta(hours=20), 4), per_hour=1)

    detect_silence(NOW)

    group = FailureGroup.objects.get()
    # Last heard of on Thursday at 14:00: judged over the 23 hours since.
    assert group.detail["hours"] == 23
    assert group.title.startswith("Billing sender: nothing received (usually about")
    assert group.first_seen == TOP - timedelta(hours=23)


def test_each_silent_hour_is_counted_once_and_the_title_moves_on(json_source):
    arrivals(json_source, hours(TOP - timedelta(days=6), TOP - timedelta(hours=5)), per_hour=10)
    detect_silence(NOW)

    assert not detect_silence(NOW)
    detect_silence(NOW + timedelta(hours=1))

    group = FailureGroup.objects.get()
    # 09:00 to 13:00 on the first pass, 14:00 on the next.
    assert group.occurrences == 6
    assert group.detail["hours"] == 3


def test_a_schedule_says_when_a_source_must_report(json_source, settings):
    settings.NOTIFWATCH_SILENCE_SCHEDULES = {"billing": {"days": [0, 1, 2, 3, 4], "hours": [9, 17]}}

    # Saturday: outside the schedule, nothing is expected.
    detect_silence(NOW + timedelta(days=1))
    assert not FailureGroup.objects.exists()

    # Friday afternoon, no history at all: inside business hours something must come.
    detect_silence(NOW)
    group = FailureGroup.objects.get()
    assert group.title == "Billing sender: only 0 events in the last 3 hours, about 5 expected"


def test_a_purpose_that_stopped_within_a_busy_source(json_source):
    events = []
    for hour in hours(TOP - timedelta(days=3), TOP):
        for n in range(6):
            at = hour + timedelta(minutes=10 * n)
            events.append(event(f"oc-{at:%d%H%M}", "sent", at, customer_id="C-1"))
            if hour < TOP - timedelta(hours=4):
                events.append(
                    event(
                        f"pr-{at:%d%H%M}", "sent", at, purpose="password_reset", customer_id="C-2"
                    )
                )
    import_events(json_source, events)
    arrive_as_logged(json_source)

    detect_silence(NOW)

    group = FailureGroup.objects.get()
    assert group.purpose == "password_reset"
    assert group.title == ("Billing sender: no password reset sends (usually about 18 in 3 hours)")
    assert group.first_seen == TOP.replace(hour=10)
    assert group.detail["mode"] == "purpose_stopped"


def test_a_sender_that_ships_yesterdays_log_each_morning_is_not_silent(json_source):
    from notifwatch.ingest.models import RawEvent

    # Today's log has not been shipped yet: only the days before are in.
    events = []
    for hour in hours(TOP - timedelta(days=5), TOP.replace(hour=0)):
        for minute in (5, 25, 45):
            at = hour + timedelta(minutes=minute)
            events.append(event(f"pr-{at:%d%H%M}", "sent", at, purpose="password_reset"))
    import_events(json_source, events)
    arrive_as_logged(json_source)
    for raw in RawEvent.objects.filter(source=json_source):
        shipped = (raw.received_at + timedelta(days=1)).replace(hour=6, minute=0)
        RawEvent.objects.filter(pk=raw.pk).update(received_at=shipped)

    detect_silence(NOW)

    assert not FailureGroup.objects.exists()
