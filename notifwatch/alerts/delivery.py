"""Sending the recorded alerts, each exactly once, retried with backoff until it goes.

The database is the lock. A worker claims an alert with a conditional UPDATE that matches the
status and attempt count it read (pending, n attempts -> n + 1, due again only after a lease);
only the worker whose UPDATE touched the row sends it, so two workers, or a job and the "send a
test alert" button, never both send one alert. A worker that dies after claiming leaves the
alert to be tried again when the lease runs out (the attempt counts). The send's outcome is
written with the same condition: sent, back to pending with a backoff, or, after
NOTIFWATCH_ALERT_ATTEMPTS, failed (shown on the overview and the subscriptions page).

Daily digests: a subscription with timing "daily" has its alerts held; once a day, at its
digest hour in the subscriber's time zone, they go out as one digest alert that lists them.
"""

import logging
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.middleware import user_zone
from notifwatch.alerts.channels import SendFailed, absolute_link, send_alert
from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Subscription
from notifwatch.alerts.recording import Message, alert_key, record_alert

logger = logging.getLogger("notifwatch.alerts")

# A claimed alert is not due again before this: far longer than one send (10 s timeouts).
CLAIM_LEASE = timedelta(minutes=5)
# Alerts sent per run: a long backlog is worked through a batch a minute.
BATCH = 200
# The longest a daily digest lists one by one; the rest are counted.
DIGEST_LISTED = 50


def max_attempts() -> int:
    return settings.NOTIFWATCH_ALERT_ATTEMPTS


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed send: 1, 2, 4, 8, 16 minutes, then an hour at most."""
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


def deliver_alerts(now: datetime | None = None, *, only: Iterable[int] | None = None) -> dict:
    """Send the pending alerts that are due (or only those of `only`, if due); count outcomes."""
    now = now or timezone.now()
    due = Alert.objects.filter(status=AlertStatus.PENDING, next_attempt_at__lte=now)
    if only is not None:
        due = due.filter(pk__in=list(only))
    counts = {"sent": 0, "retrying": 0, "failed": 0, "taken_by_another": 0}
    for alert in due.select_related("subscription__user").order_by("next_attempt_at", "pk")[:BATCH]:
        counts[deliver_alert(alert, now)] += 1
    return counts


def deliver_alert(alert: Alert, now: datetime) -> str:
    """Claim `alert` as read, send it, record the outcome; "taken_by_another" if not claimed."""
    attempt = alert.attempts + 1
    claimed = Alert.objects.filter(
        pk=alert.pk, status=AlertStatus.PENDING, attempts=alert.attempts
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE)
    if claimed != 1:
        return "taken_by_another"
    ours = Alert.objects.filter(pk=alert.pk, status=AlertStatus.PENDING, attempts=attempt)
    try:
        send_alert(alert)
    except SendFailed as exc:
        error = str(exc)
        if attempt >= max_attempts():
            ours.update(status=AlertStatus.FAILED, last_error=error, next_attempt_at=None)
            logger.warning(
                "Alert %s failed for good after %s attempts: %s", alert.pk, attempt, error
            )
            return "failed"
        ours.update(last_error=error, next_attempt_at=now + backoff(attempt))
        logger.info("Alert %s attempt %s failed, retried later: %s", alert.pk, attempt, error)
        return "retrying"
    ours.update(status=AlertStatus.SENT, sent_at=now, next_attempt_at=None)
    return "sent"


def subscriber_zone(subscription: Subscription) -> zoneinfo.ZoneInfo:
    """The user's own zone; a team's (or a user without one) is the server's TIME_ZONE."""
    zone = user_zone(subscription.user) if subscription.user is not None else None
    return zone or zoneinfo.ZoneInfo(settings.TIME_ZONE)


def send_daily_digests(now: datetime | None = None) -> dict:
    """Gather each daily subscription's held alerts into one digest, at its hour, once a day.

    The digest is recorded (occurrence `daily:<subscription>:<local date>`, so a second worker
    finds it there) and released to be sent; the held alerts it lists point at it. Alerts held
    after today's digest went out wait for tomorrow's.
    """
    now = now or timezone.now()
    waiting = (
        Subscription.objects.filter(
            is_active=True, alerts__status=AlertStatus.HELD, alerts__digest__isnull=True
        )
        .select_related("user__membership")
        .distinct()
    )
    recorded = 0
    for subscription in waiting:
        local = now.astimezone(subscriber_zone(subscription))
        if local.hour < subscription.digest_hour:
            continue
        occurrence = f"daily:{subscription.pk}:{local.date().isoformat()}"
        if Alert.objects.filter(
            key=alert_key(subscription.kind, occurrence, subscription.pk)
        ).exists():
            continue
        held = list(
            subscription.alerts.filter(
                status=AlertStatus.HELD, digest__isnull=True, created_at__lte=now
            ).order_by("created_at", "pk")
        )
        if held:
            record_daily_digest(subscription, occurrence, held, local)
            recorded += 1
    return {"digests": recorded}


def record_daily_digest(
    subscription: Subscription, occurrence: str, held: list[Alert], local: datetime
) -> Alert:
    with transaction.atomic():
        (digest,) = record_alert(
            subscription.kind,
            occurrence,
            daily_digest_message(subscription, held, local),
            subscriptions=Subscription.objects.filter(pk=subscription.pk),
        )
        # Recorded for a daily subscription, the digest is itself held: it is the one to send.
        Alert.objects.filter(pk=digest.pk, status=AlertStatus.HELD).update(
            status=AlertStatus.PENDING
        )
        # The alerts the recorded digest lists (a second worker's list if it was first).
        Alert.objects.filter(pk__in=digest.payload.get("alerts", []), digest__isnull=True).exclude(
            pk=digest.pk
        ).update(digest=digest)
    return digest


def daily_digest_message(subscription: Subscription, held: list[Alert], local: datetime) -> Message:
    kind = AlertKind(subscription.kind).label
    count = len(held)
    lines = [f"{count} alert{'s' if count != 1 else ''} held for your daily digest ({kind}):", ""]
    for alert in held[:DIGEST_LISTED]:
        link = f" — {absolute_link(alert.link)}" if alert.link else ""
        lines.append(f"• {alert.subject}{link}")
    if count > DIGEST_LISTED:
        lines.append(f"… and {count - DIGEST_LISTED} more.")
    return Message(
        subject=f"Daily digest for {local:%a %-d %b}: {count} alert{'s' if count != 1 else ''}",
        body="\n".join(lines),
        link=reverse("exception_list"),
        payload={
            "daily_digest": local.date().isoformat(),
            "alerts": [alert.pk for alert in held],
            "items": [
                {"key": alert.key, "kind": alert.kind, "subject": alert.subject, "link": alert.link}
                for alert in held
            ],
        },
    )
