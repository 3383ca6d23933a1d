"""Health alerts: once per outage of a part, whoever notices first (the worker or the web)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.alerts.models import Alert, AlertKind
from notifwatch.audit.models import AuditEntry
from notifwatch.health.alerting import alert_if_worker_stopped, watch_health
from notifwatch.health.checks import check_health
from notifwatch.health.models import PartState
from notifwatch.worker.heartbeats import record_heartbeat
from notifwatch.worker.models import Schedule
from notifwatch.worker.scheduling import REGISTRY

pytestmark = pytest.mark.django_db


def health_alerts(part: str) -> list[Alert]:
    return list(
        Alert.objects.filter(kind=AlertKind.HEALTH, key__startswith=f"health:{part}:").order_by(
            "pk"
        )
    )


def detection_late_by(minutes: int) -> None:
    Schedule.objects.filter(name="run_checks").update(
        last_succeeded_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_it_is_a_worker_job_every_minute():
    jobs = {job.name: job for job in REGISTRY}
    assert jobs["watch_health"].task_path == "notifwatch.health.alerting.watch_health"
    assert jobs["watch_health"].interval_seconds == 60


def test_healthy_alerts_nobody(healthy, health_subscriber):
    assert watch_health() == {"failing": [], "alerts": 0}
    assert not Alert.objects.exists()


def test_a_part_turning_failing_alerts_once_however_often_it_is_looked_at(
    healthy, health_subscriber
):
    detection_late_by(42)

    first = watch_health()
    watch_health()
    watch_health()

    assert first["failing"] == ["detection"]
    (alert,) = health_alerts("detection")
    assert alert.subscription == health_subscriber
    assert alert.subject == "notifwatch needs attention: detection is failing"
    assert "detection has not run for 42 minutes" in alert.body
    assert alert.payload["status"] == "failing"
    assert AuditEntry.objects.filter(action="health.failing").count() == 1


def test_the_web_side_and_the_worker_record_one_alert_together(worker_stopped, health_subscriber):
    health = check_health()

    alert_if_worker_stopped(health)  # a page or /healthz
    watch_health()  # the worker, back for a moment, or a second worker
    alert_if_worker_stopped(check_health())

    assert len(health_alerts("worker")) == 1
    assert len(health_alerts("detection")) == 1


def test_recovery_alerts_once_and_a_new_outage_alerts_again(healthy, health_subscriber):
    detection_late_by(42)
    watch_health()
    detection_late_by(0)

    watch_health()
    watch_health()

    failing, recovered = health_alerts("detection")
    assert recovered.key.endswith(":recovered:" + str(health_subscriber.pk))
    assert recovered.subject == "notifwatch recovered: detection is ok again"
    assert PartState.objects.get(part="detection").failing_since is None
    assert AuditEntry.objects.filter(action="health.recovered").count() == 1

    detection_late_by(42)
    watch_health(timezone.now() + timedelta(minutes=5))  # the next outage starts later

    assert len(health_alerts("detection")) == 3
    assert health_alerts("detection")[2].key != failing.key


def test_the_state_keeps_the_latest_words_while_failing(healthy):
    detection_late_by(10)
    watch_health()
    detection_late_by(42)
    watch_health()

    assert PartState.objects.get(part="detection").reason.startswith(
        "detection has not run for 42 minutes"
    )


def test_a_running_worker_leaves_the_alarm_to_its_own_job(healthy, health_subscriber):
    detection_late_by(42)
    record_heartbeat("worker-1")

    assert alert_if_worker_stopped(check_health()) == []
    assert not Alert.objects.exists()
