"""What records an alert: the exceptions' history, read by a worker job, and their impact.

Every change of an exception writes a GroupHistory row in the transaction that makes it
(failures/actions.py). Alerts sit above failures and failures never call them: the worker job
`alert_on_history` reads the history rows written since its last pass and records the alerts
they call for. Each alert's occurrence is `history:<id>` (or `impact:<exception id>`), so reading
a row twice records nothing new; the cursor only keeps each pass cheap.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.alerts import messages
from notifwatch.alerts.models import Alert, AlertCursor, AlertKind, Scope, Subscription
from notifwatch.alerts.recording import recipients, record_alert
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Kind

logger = logging.getLogger("notifwatch.alerts")

HISTORY_CURSOR = "history"
ALERTING_HISTORY = (
    HistoryKind.CREATED,
    HistoryKind.ASSIGNED,
    HistoryKind.REGRESSED,
    HistoryKind.WOKE,
)
# Rows read per pass; the next pass (a minute later) goes on from there.
BATCH = 500
# On PostgreSQL a history row's id is taken when it is written, not when its transaction
# commits: a row may become visible after a higher id was already read. Each pass reads the
# last few minutes again (recording is idempotent) so such a row is not skipped for good.
LATE_COMMIT_OVERLAP = timedelta(minutes=5)

# The impact at which a new exception alerts, per kind (NOTIFWATCH_ALERT_THRESHOLDS overrides).
# Measured as in `impact_figure`: customers not reached, customers affected where they were
# reached but hurt, occurrences where the problems are not notifications.
DEFAULT_THRESHOLDS = {
    Kind.DELIVERY_FAILURE: 5,
    Kind.LATE: 5,
    Kind.DUPLICATE_SEND: 1,
    Kind.IDENTITY: 10,
    Kind.MAPPING_BREAK: 1,
    Kind.REJECTED_WEBHOOKS: 1,
    Kind.SILENCE: 0,
}
# An exception is "new" for this long: one that reaches its threshold later is old news, seen
# in the queue and the weekly digest.
NEW_FOR = timedelta(days=7)


def alert_thresholds() -> dict[str, int]:
    configured = getattr(settings, "NOTIFWATCH_ALERT_THRESHOLDS", {}) or {}
    thresholds = {str(kind): value for kind, value in DEFAULT_THRESHOLDS.items()}
    for kind, value in configured.items():
        if kind in thresholds:
            thresholds[kind] = int(value)
    return thresholds


def impact_field(kind: str) -> str:
    """Which figure measures a kind's impact against its threshold."""
    if kind in messages.INGEST_KINDS:
        return "occurrences"
    if kind in messages.REACHED_BUT_HURT_KINDS:
        return "customers_affected"
    return "customers_not_reached"


def alert_on_history(now: datetime | None = None) -> dict[str, int]:
    """Record the alerts that the history written since the last pass, and new impact, call for.

    The first pass only marks where it starts. Returns how many history rows were read and how
    many alerts each trigger recorded (new or already there).
    """
    now = now or timezone.now()
    cursor, first_run = history_cursor(now)
    counts = {"read": 0, "assigned": 0, "regressed": 0, "woke": 0, "silence": 0}
    if first_run:
        return {**counts, "new_exception": 0}
    top = GroupHistory.objects.aggregate(top=Max("id"))["top"] or 0
    entries = list(
        GroupHistory.objects.filter(kind__in=ALERTING_HISTORY, id__gt=cursor.start, id__lte=top)
        .filter(Q(id__gt=cursor.position) | Q(at__gte=now - LATE_COMMIT_OVERLAP))
        .select_related("actor", "group__team", "group__assignee", "group__source")
        .order_by("id")[:BATCH]
    )
    for entry in entries:
        for kind, alerts in alert_on_entry(entry).items():
            counts[kind] += len(alerts)
    counts["read"] = len(entries)
    reached = entries[-1].id if len(entries) == BATCH else top
    # Only forward: a slow pass finishing after a faster one never moves the cursor back.
    AlertCursor.objects.filter(pk=cursor.pk, position__lt=reached).update(position=reached)
    counts["new_exception"] = alert_on_impact(cursor, now)
    return counts


def history_cursor(now: datetime) -> tuple[AlertCursor, bool]:
    """The job's cursor; created at the newest history row on the first pass."""
    cursor = AlertCursor.objects.filter(name=HISTORY_CURSOR).first()
    if cursor is not None:
        return cursor, False
    top = GroupHistory.objects.aggregate(top=Max("id"))["top"] or 0
    # Two workers starting together: the unique name keeps one cursor, both get it.
    cursor, created = AlertCursor.objects.get_or_create(
        name=HISTORY_CURSOR, defaults={"position": top, "start": top, "started_at": now}
    )
    if created:
        logger.info("Alerts start from history row %s: older history alerts nobody", top)
    return cursor, created


def alert_on_entry(entry: GroupHistory) -> dict[str, list[Alert]]:
    """The alerts one history row calls for, by trigger."""
    group = entry.group
    occurrence = f"history:{entry.pk}"
    recorded: dict[str, list[Alert]] = {}
    if entry.kind == HistoryKind.ASSIGNED:
        recorded["assigned"] = alert_assigned(entry, occurrence)
    elif entry.kind == HistoryKind.REGRESSED:
        message = messages.regressed_message(group, entry.comment)
        recorded["regressed"] = record_alert(AlertKind.REGRESSED, occurrence, message, group=group)
    elif entry.kind == HistoryKind.WOKE:
        message = messages.woke_message(group, entry.comment)
        recorded["woke"] = record_alert(AlertKind.WOKE, occurrence, message, group=group)
    if group.kind == Kind.SILENCE and entry.kind in (HistoryKind.CREATED, HistoryKind.REGRESSED):
        message = messages.silence_message(group, came_back=entry.kind == HistoryKind.REGRESSED)
        recorded["silence"] = record_alert(
            AlertKind.SILENCE,
            occurrence,
            message,
            group=group,
            subscriptions=silence_recipients(group),
        )
    return recorded


def alert_assigned(entry: GroupHistory, occurrence: str) -> list[Alert]:
    """To the team and the person the assignment gave (what changed), as the row names them."""
    old = entry.old if isinstance(entry.old, dict) else {}
    new = entry.new if isinstance(entry.new, dict) else {}
    team_id = new.get("team") if new.get("team") != old.get("team") else None
    assignee_id = new.get("assignee") if new.get("assignee") != old.get("assignee") else None
    team = Team.objects.filter(pk=team_id).first() if team_id else None
    assignee = get_user_model().objects.filter(pk=assignee_id).first() if assignee_id else None
    if team is None and assignee is None:
        return []
    reached = recipients(
        AlertKind.ASSIGNED,
        users=[assignee] if assignee else [],
        teams=[team] if team else [],
    )
    if entry.actor_id:
        # Whoever made the assignment knows: not to their own inbox (their team still hears).
        reached = reached.exclude(user_id=entry.actor_id)
    owner_team = team or Team.objects.filter(pk=new.get("team")).first()
    owner_assignee = assignee or get_user_model().objects.filter(pk=new.get("assignee")).first()
    message = messages.assigned_message(
        entry.group,
        team=team,
        assignee=assignee,
        actor=entry.actor,
        owner_team=owner_team if new.get("team") else None,
        owner_assignee=owner_assignee if new.get("assignee") else None,
    )
    return record_alert(
        AlertKind.ASSIGNED, occurrence, message, group=entry.group, subscriptions=reached
    )


def silence_recipients(group: FailureGroup) -> QuerySet[Subscription]:
    """The silent source's owners, and every silence subscription that asked for all."""
    return recipients(AlertKind.SILENCE, group=group) | Subscription.objects.filter(
        kind=AlertKind.SILENCE, is_active=True, scope=Scope.ALL
    )


def alert_on_impact(cursor: AlertCursor, now: datetime) -> int:
    """New open exceptions whose impact reached their kind's threshold: once per exception.

    Checked on every pass, since an exception's impact grows after it opens.
    """
    crossing = Q()
    for kind, threshold in alert_thresholds().items():
        crossing |= Q(kind=kind, **{f"{impact_field(kind)}__gte": max(threshold, 0)})
    already = Alert.objects.filter(kind=AlertKind.NEW_EXCEPTION, group__isnull=False)
    groups = (
        FailureGroup.objects.open_for_review()
        .filter(crossing, created_at__gte=max(cursor.started_at, now - NEW_FOR))
        .exclude(pk__in=already.values("group_id"))
        .select_related("team", "assignee", "source")
        .order_by("id")
    )
    recorded = 0
    for group in groups:
        message = messages.new_exception_message(group)
        recorded += len(
            record_alert(AlertKind.NEW_EXCEPTION, f"impact:{group.pk}", message, group=group)
        )
    return recorded
