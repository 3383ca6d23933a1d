"""Every change to subscriptions goes through these functions, each with its audit entry.

A webhook's signing secret never reaches an audit entry or a page after it is saved: entries
say that it changed, pages show its first characters as a hint.
"""

import base64
import secrets
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifwatch.alerts.delivery import deliver_alerts
from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Channel, Subscription
from notifwatch.alerts.recording import Message, record_alert
from notifwatch.audit.actions import record_audit
from notifwatch.ingest.standard_webhooks import PREFIX

# What a subscription's audit entry records (the secret is left out on purpose).
AUDITED_FIELDS = (
    "kind",
    "channel",
    "target",
    "timing",
    "scope",
    "digest_weekday",
    "digest_hour",
    "is_active",
)


@dataclass
class SavedSubscription:
    subscription: Subscription
    # A secret generated for a new outgoing webhook: shown once, in the response that made it.
    new_secret: str | None = None


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_hint(secret: str) -> str:
    """Enough of a secret to tell which one is set, too little to sign with it."""
    return f"{secret[: len(PREFIX) + 4]}…" if secret else ""


def audited(subscription: Subscription) -> dict:
    values = {name: getattr(subscription, name) for name in AUDITED_FIELDS}
    return {**values, "owner": str(subscription.user or subscription.team)}


def create_subscription(
    *, actor, user=None, team=None, secret: str = "", **fields
) -> SavedSubscription:
    """A new subscription for `user` or `team`; an outgoing webhook without a secret gets one."""
    generated = None
    if fields.get("channel") == Channel.WEBHOOK and not secret:
        secret = generated = generate_secret()
    with transaction.atomic():
        subscription = Subscription.objects.create(user=user, team=team, secret=secret, **fields)
        record_audit(
            actor=actor,
            action="subscription.created",
            target=subscription,
            new={**audited(subscription), "secret_set": bool(secret)},
        )
    return SavedSubscription(subscription, generated)


def update_subscription(
    subscription: Subscription, *, actor, secret: str = "", **fields
) -> SavedSubscription:
    """Change what `subscription` receives and how; a blank `secret` keeps the one set."""
    generated = None
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        old = audited(subscription)
        for name, value in fields.items():
            setattr(subscription, name, value)
        if subscription.channel == Channel.WEBHOOK and not (secret or subscription.secret):
            secret = generated = generate_secret()
        secret_changed = bool(secret) and secret != subscription.secret
        if secret_changed:
            subscription.secret = secret
        new = audited(subscription)
        if new == old and not secret_changed:
            return SavedSubscription(subscription)
        subscription.save()
        changed = [name for name in new if new[name] != old[name]]
        record_audit(
            actor=actor,
            action="subscription.changed",
            target=subscription,
            old={name: old[name] for name in changed},
            new={name: new[name] for name in changed}
            | ({"secret_set": True} if secret_changed else {}),
        )
    return SavedSubscription(subscription, generated)


def remove_subscription(subscription: Subscription, *, actor) -> None:
    """Delete `subscription` and its alerts; the audit entry keeps what it was."""
    with transaction.atomic():
        record_audit(
            actor=actor,
            action="subscription.removed",
            target=subscription,
            old=audited(subscription),
        )
        subscription.delete()


def send_test_alert(subscription: Subscription, *, actor) -> Alert:
    """Record a test alert for `subscription` alone, then try to send it at once.

    The test is never held for a daily digest: the point is to see it arrive now. If the first
    try fails, the worker retries it like any alert, and the page shows why.
    """
    occurrence = f"test:{uuid.uuid4()}"
    who = subscription.user or subscription.team
    message = Message(
        subject=f"Test alert from notifwatch ({AlertKind(subscription.kind).label})",
        body=(
            f"{actor.get_username()} sent this test to check that alerts for {who} by "
            f"{subscription.get_channel_display().lower()} arrive. Nothing happened."
        ),
        link=reverse("alerts"),
        payload={"test": True},
    )
    with transaction.atomic():
        (alert,) = record_alert(
            subscription.kind,
            occurrence,
            message,
            subscriptions=Subscription.objects.filter(pk=subscription.pk),
        )
        Alert.objects.filter(pk=alert.pk, status=AlertStatus.HELD).update(
            status=AlertStatus.PENDING
        )
        record_audit(
            actor=actor,
            action="subscription.test_sent",
            target=subscription,
            new={"alert": alert.key},
        )
    deliver_alerts(timezone.now(), only=[alert.pk])
    alert.refresh_from_db()
    return alert
