"""check_health: each part ok or failing, why in plain words, with its figures."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Channel, Subscription
from notifwatch.health.checks import check_health, elapsed_words
from notifwatch.ingest.models import Outcome, RawEvent, Transport
from notifwatch.worker.heartbeats import record_heartbeat
from notifwatch.worker.models import Schedule
from tests.health.conftest import run_checks_schedule

pytestmark = pytest.mark.django_db


def raw_event(source, received_at, outcome=Outcome.PARSED) -> RawEvent:
    return RawEvent.objects.create(
        source=source,
        received_at=received_at,
        transport=Transport.API,
        body=b"{}",
        content_hash=f"{received_at.timestamp()}-{outcome}",
        outcome=outcome,
    )


def test_it_is_ok_with_a_live_worker_and_a_recent_detection_pass(healthy):
    health = check_health()

    assert health.ok, health.as_text()
    assert [part.name for part in health.parts] == [
        "database",
        "worker",
        "detection",
        "ingest",
        "alerts",
    ]
    assert health.part("worker").figures["workers_alive"] == 1


def test_a_worker_never_seen_is_failing():
    worker = check_health().part("worker")

    assert not worker.ok
    assert worker.reason.startswith("no worker has ever sent a heartbeat")
    assert worker.figures["last_seen_at"] is None


def test_a_worker_silent_past_its_limit_is_failing(worker_stopped, settings):
    worker = check_health().part("worker")

    assert not worker.ok
    assert worker.reason.startswith("no worker heartbeat for 9 minutes")
    assert worker.figures["workers_alive"] == 0

    settings.NOTIFWATCH_WORKER_SILENT_SECONDS = 3600
    assert check_health().part("worker").ok


def test_detection_overdue_is_failing(healthy):
    now = timezone.now()
    Schedule.objects.filter(name="run_checks").update(last_succeeded_at=now - timedelta(minutes=42))

    detection = check_health(now).part("detection")

    assert not detection.ok
    assert detection.reason == (
        "detection has not run for 42 minutes (is `manage.py run_worker` running?)"
    )
    # 3 intervals of a minute, but never less than 5 minutes.
    assert detection.figures["allowed_seconds"] == 300


def test_detection_a_little_late_is_still_ok(healthy):
    now = timezone.now()
    Schedule.objects.filter(name="run_checks").update(last_succeeded_at=now - timedelta(minutes=4))

    assert check_health(now).part("detection").ok


def test_detection_failing_in_a_row_says_so_without_the_error_text(db):
    record_heartbeat("w", timezone.now())
    run_checks_schedule(
        timezone.now() - timedelta(hours=2),
        consecutive_failures=5,
        last_error="IntegrityError: Key (recipient)=(pat@example.com)",
    )

    detection = check_health().part("detection")

    assert not detection.ok
    assert "failed 5 times in a row" in detection.reason
    assert "pat@example.com" not in detection.reason  # /healthz answers anyone


def test_detection_never_run_is_failing(db):
    assert check_health().part("detection").reason.startswith("detection has never run")


def test_every_active_source_silent_is_failing(healthy, json_source, settings):
    now = timezone.now()
    raw_event(json_source, now - timedelta(hours=7))

    ingest = check_health(now).part("ingest")

    assert not ingest.ok
    assert ingest.reason.startswith("no raw event from any source for 7 hours")
    settings.NOTIFWATCH_INGEST_SILENT_SECONDS = 8 * 3600
    assert check_health(now).part("ingest").ok


def test_one_source_still_speaking_keeps_ingest_ok(healthy, json_source, inhouse_source):
    now = timezone.now()
    raw_event(json_source, now - timedelta(hours=7))
    raw_event(inhouse_source, now - timedelta(minutes=2))
    # A refused call is not the source speaking.
    raw_event(json_source, now - timedelta(minutes=1), outcome=Outcome.REJECTED)

    ingest = check_health(now).part("ingest")

    assert ingest.ok
    assert ingest.reason == "last raw event 2 minutes ago"


def test_sources_that_never_spoke_are_not_a_stopped_ingest(healthy, json_source):
    ingest = check_health().part("ingest")

    assert ingest.ok
    assert ingest.reason == "no raw event received yet"


def test_raw_events_waiting_unprocessed_are_failing(healthy, json_source):
    now = timezone.now()
    raw_event(json_source, now - timedelta(minutes=8), outcome=Outcome.RECEIVED)
    raw_event(json_source, now - timedelta(minutes=7), outcome=Outcome.RECEIVED)
    raw_event(json_source, now - timedelta(minutes=1), outcome=Outcome.RECEIVED)  # in time yet
    raw_event(json_source, now - timedelta(minutes=30), outcome=Outcome.FAILED)

    ingest = check_health(now).part("ingest")

    assert not ingest.ok
    assert "2 raw events waiting over 5 minutes to be processed" in ingest.reason
    assert "1 raw event could not be processed" in ingest.reason
    assert (ingest.figures["raw_waiting"], ingest.figures["raw_failed"]) == (2, 1)


def test_failed_and_overdue_alerts_are_failing(healthy, admin_user):
    now = timezone.now()
    subscription = Subscription.objects.create(
        user=admin_user, kind=AlertKind.ASSIGNED, channel=Channel.EMAIL
    )

    def alert(key, **fields):
        return Alert.objects.create(
            key=key,
            subscription=subscription,
            kind=AlertKind.ASSIGNED,
            subject=key,
            body="",
            **fields,
        )

    assert check_health(now).part("alerts").ok
    alert("failed", status=AlertStatus.FAILED)
    alert("overdue", status=AlertStatus.PENDING, next_attempt_at=now - timedelta(minutes=20))
    alert("due-now", status=AlertStatus.PENDING, next_attempt_at=now - timedelta(minutes=1))

    part = check_health(now).part("alerts")

    assert not part.ok
    assert part.figures == {"failed_last_day": 1, "overdue": 1}
    assert "1 alert could not be sent in the last day" in part.reason
    assert "1 alert waiting over 15 minutes to be sent" in part.reason


def test_only_the_parts_asked_are_checked(worker_stopped):
    health = check_health(parts=["database"])

    assert health.ok
    assert [part.name for part in health.parts] == ["database"]


def test_the_outgoing_heartbeat_is_a_part_only_when_configured(healthy, settings):
    assert check_health().part("heartbeat") is None

    settings.NOTIFWATCH_HEARTBEAT_URL = "https://hc.example.com/ping/secret-uuid"
    part = check_health().part("heartbeat")

    assert part.ok
    assert "secret-uuid" not in part.reason + str(part.figures)


@pytest.mark.parametrize(
    "seconds, words",
    [(0, "0 seconds"), (1, "1 second"), (59, "59 seconds"), (547, "9 minutes"), (25200, "7 hours")],
)
def test_elapsed_words_say_the_largest_whole_unit(seconds, words):
    assert elapsed_words(timedelta(seconds=seconds)) == words
