"""Noting notifwatch's health: a part that turns failing or recovers is audited and alerted once.

The worker notes the health every minute (alerting.watch_health); the web side notes it too
when it finds the worker stopped, since a stopped worker cannot. Both may look at the same
moment: the part's state row decides one outage start by a conditional update, its alert is
keyed by that start, and record_alert adds nothing the second time.
"""

from datetime import datetime

from django.db import transaction
from django.urls import reverse

from notifwatch.alerts.models import Alert, AlertKind
from notifwatch.alerts.recording import Message, record_alert
from notifwatch.audit.actions import record_audit
from notifwatch.health.checks import Health, Part, elapsed_words
from notifwatch.health.models import PartState

# Alerts and audit entries are written by notifwatch itself, not by a person.
SYSTEM = "notifwatch health"


def note_health(health: Health) -> list[Alert]:
    """Note every part of `health`; return the health alerts of its failing and recovered parts."""
    alerts: list[Alert] = []
    for part in health.parts:
        # A database that does not answer cannot be noted in it (the monitors see /healthz).
        if part.name != "database":
            alerts += note_part(part, health.checked_at)
    return alerts


def note_part(part: Part, now: datetime) -> list[Alert]:
    state, _ = PartState.objects.get_or_create(part=part.name, defaults={"noted_at": now})
    if not part.ok:
        return note_failing(state, part, now)
    if state.failing_since is not None:
        return note_recovered(state, part, now)
    return []


def note_failing(state: PartState, part: Part, now: datetime) -> list[Alert]:
    with transaction.atomic():
        turned = PartState.objects.filter(pk=state.pk, failing_since__isnull=True).update(
            failing_since=now, reason=part.reason, noted_at=now
        )
        if turned:
            record_audit(
                actor=None,
                action="health.failing",
                target=state,
                new={"part": part.name, "reason": part.reason, **part.figures},
                system_label=SYSTEM,
            )
        else:
            # Still failing: the banner shows the latest words ("for 42 minutes").
            PartState.objects.filter(pk=state.pk).update(reason=part.reason, noted_at=now)
    since = PartState.objects.values_list("failing_since", flat=True).get(pk=state.pk)
    # Recorded on every look, not only when it turned: a crash in between is healed next time.
    return record_alert(
        AlertKind.HEALTH, occurrence(part.name, since), failing_message(part, since), everyone=True
    )


def note_recovered(state: PartState, part: Part, now: datetime) -> list[Alert]:
    since = state.failing_since
    with transaction.atomic():
        recovered = PartState.objects.filter(pk=state.pk, failing_since=since).update(
            failing_since=None, reason="", noted_at=now
        )
        if recovered:
            record_audit(
                actor=None,
                action="health.recovered",
                target=state,
                old={"part": part.name, "failing_since": since.isoformat()},
                new={"part": part.name, "reason": part.reason},
                system_label=SYSTEM,
            )
    return record_alert(
        AlertKind.HEALTH,
        occurrence(part.name, since) + ":recovered",
        recovered_message(part, since, now),
        everyone=True,
    )


def occurrence(part: str, since: datetime) -> str:
    """One outage of one part: a new outage starts at another moment, so it alerts again."""
    return f"{part}:{since:%Y-%m-%dT%H:%M:%S}"


def failing_message(part: Part, since: datetime) -> Message:
    return Message(
        subject=f"notifwatch needs attention: {part.name} is failing",
        body=(
            f"notifwatch itself is not healthy: {part.reason}.\n\n"
            f"Failing since {since:%Y-%m-%d %H:%M} UTC. Until this is fixed, failures of your "
            "notifications may go unnoticed. Another message follows when it recovers; "
            "/healthz shows every part."
        ),
        link=reverse("home"),
        payload={
            "health": part.name,
            "status": "failing",
            "since": since.isoformat(),
            "reason": part.reason,
            "figures": part.figures,
        },
    )


def recovered_message(part: Part, since: datetime, now: datetime) -> Message:
    return Message(
        subject=f"notifwatch recovered: {part.name} is ok again",
        body=(
            f"{part.name} is healthy again ({part.reason}) after failing for "
            f"{elapsed_words(now - since)}, since {since:%Y-%m-%d %H:%M} UTC."
        ),
        link=reverse("home"),
        payload={
            "health": part.name,
            "status": "recovered",
            "since": since.isoformat(),
            "recovered_at": now.isoformat(),
            "reason": part.reason,
            "figures": part.figures,
        },
    )
