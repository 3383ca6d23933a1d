"""Alerts that could not be sent: a problem of their own, said in plain words on the overview."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Window
from django.utils import timezone

from notifwatch.alerts.models import Alert, AlertStatus

# A failed alert stays on the overview this long: long enough to be noticed after a weekend.
SHOWN_FOR = timedelta(days=7)


@dataclass
class FailedAlerts:
    count: int
    last_error: str
    last_at: datetime

    @property
    def text(self) -> str:
        alerts = "1 alert" if self.count == 1 else f"{self.count:,} alerts"
        return f"{alerts} could not be sent in the last 7 days (last: {self.last_error})"


def failed_alerts(now: datetime | None = None) -> FailedAlerts | None:
    """The alerts that finally failed lately, with the latest one's reason; None if none."""
    now = now or timezone.now()
    # One query, failures or not: the overview's query budget is fixed. The window counts every
    # failed alert before LIMIT keeps the latest.
    latest = list(
        Alert.objects.filter(status=AlertStatus.FAILED, created_at__gte=now - SHOWN_FOR)
        .annotate(total=Window(Count("pk")))
        .order_by("-created_at", "-pk")
        .values("last_error", "created_at", "total")[:1]
    )
    if not latest:
        return None
    last = latest[0]
    return FailedAlerts(
        last["total"], last["last_error"] or "no reason recorded", last["created_at"]
    )
