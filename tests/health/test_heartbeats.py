"""The worker's heartbeat row, and the outgoing heartbeat after each detection pass."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.health.checks import check_health
from notifwatch.worker.heartbeats import forget_gone_workers, ping_heartbeat_url, record_heartbeat
from notifwatch.worker.management.commands.run_worker import Scheduler
from notifwatch.worker.models import HeartbeatPing, Schedule, WorkerHeartbeat
from notifwatch.worker.tasks import run_scheduled
from tests.health.conftest import run_checks_schedule

pytestmark = pytest.mark.django_db


def test_a_heartbeat_is_one_row_per_worker_kept_current():
    first = timezone.now() - timedelta(minutes=5)
    record_heartbeat("worker-1", first)
    record_heartbeat("worker-1", first + timedelta(seconds=5))
    record_heartbeat("worker-2", first + timedelta(seconds=6))

    row = WorkerHeartbeat.objects.get(worker_id="worker-1")
    assert WorkerHeartbeat.objects.count() == 2
    assert row.started_at == first
    assert row.last_seen_at == first + timedelta(seconds=5)
    assert row.pid > 0 and row.hostname


def test_every_scheduler_tick_beats():
    Scheduler(5, "ticking-worker").tick()

    assert WorkerHeartbeat.objects.get(worker_id="ticking-worker").last_seen_at > (
        timezone.now() - timedelta(seconds=5)
    )
    assert check_health().part("worker").ok


def test_workers_gone_for_a_day_are_forgotten():
    now = timezone.now()
    record_heartbeat("gone", now - timedelta(days=2))
    record_heartbeat("recent", now - timedelta(hours=3))

    assert forget_gone_workers(now) == 1
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["recent"]


def test_a_detection_pass_pings_the_heartbeat_url(ping_receiver, settings):
    receiver = ping_receiver()
    settings.NOTIFWATCH_HEARTBEAT_URL = receiver.url("/ping/5a1f")
    run_checks_schedule(None)

    run_scheduled.enqueue("run_checks", 1)  # the suite runs tasks at once

    assert receiver.paths == ["/ping/5a1f"]
    ping = HeartbeatPing.objects.get()
    assert ping.last_ok_at is not None and ping.last_error == ""
    assert Schedule.objects.get(name="run_checks").last_succeeded_at is not None


def test_other_jobs_do_not_ping(ping_receiver, settings):
    receiver = ping_receiver()
    settings.NOTIFWATCH_HEARTBEAT_URL = receiver.url()
    Schedule.objects.create(
        name="refresh_counts",
        task_path="notifwatch.deliveries.counts.refresh_notification_counts",
        interval_seconds=60,
        next_run_at=timezone.now(),
    )

    run_scheduled.enqueue("refresh_counts", 1)

    assert receiver.paths == []


def test_a_failing_ping_never_fails_the_pass_and_shows_in_health(ping_receiver, settings):
    receiver = ping_receiver(status=500)
    settings.NOTIFWATCH_HEARTBEAT_URL = receiver.url("/ping/secret-uuid")
    record_heartbeat("worker-1")
    run_checks_schedule(None)

    run_scheduled.enqueue("run_checks", 1)

    schedule = Schedule.objects.get(name="run_checks")
    assert schedule.last_succeeded_at is not None and schedule.consecutive_failures == 0
    ping = HeartbeatPing.objects.get()
    assert ping.last_error == "the heartbeat URL answered 500 Internal Server Error"
    part = check_health().part("heartbeat")
    assert not part.ok
    assert part.reason.startswith("the outgoing heartbeat to 127.0.0.1 failed")
    assert "secret-uuid" not in part.reason

    receiver.status = 200
    assert ping_heartbeat_url()
    assert check_health().part("heartbeat").ok


def test_an_unreachable_monitor_is_recorded(settings, ping_receiver):
    receiver = ping_receiver()
    url = receiver.url()
    receiver.close()  # nothing listens there any more

    assert ping_heartbeat_url(url=url) is False
    assert HeartbeatPing.objects.get().last_error.startswith(
        "the heartbeat URL could not be reached"
    )


def test_no_url_no_ping(settings):
    settings.NOTIFWATCH_HEARTBEAT_URL = ""

    assert ping_heartbeat_url() is False
    assert not HeartbeatPing.objects.exists()
