"""Who raises the alarm: the worker every minute, and the web side when the worker stopped."""

import logging
from datetime import datetime

from django.utils import timezone

from notifwatch.alerts.delivery import deliver_alerts
from notifwatch.alerts.models import Alert, AlertStatus
from notifwatch.health.actions import note_health
from notifwatch.health.checks import Health, check_health

logger = logging.getLogger("notifwatch.health")


def watch_health(now: datetime | None = None) -> dict:
    """The worker's job (every minute): check every part, note what turned failing or recovered.

    The alerts it records are sent by the delivery job, like any other.
    """
    health = check_health(now)
    alerts = note_health(health)
    return {
        "failing": [part.name for part in health.failing],
        "alerts": len(alerts),
    }


def alert_if_worker_stopped(health: Health) -> list[Alert]:
    """From a request (/healthz, the banner): a stopped worker sends no alert, so send it here.

    Noted like the worker would (exactly once, whoever is first), then sent at once: the
    delivery job that would send it runs in the stopped worker. Never raises: the page or the
    monitor's answer matters more than the alert.
    """
    if not health.worker_stopped:
        return []
    try:
        alerts = note_health(health)
        due = [alert.pk for alert in alerts if alert.status == AlertStatus.PENDING]
        if due:
            deliver_alerts(timezone.now(), only=due)
    except Exception:
        logger.exception("Could not record or send the health alert of a stopped worker")
        return []
    return alerts
