"""Recording alerts: who should hear about something, and one Alert row each, exactly once.

Everything that alerts (an assignment, a new exception, notifwatch's own health, the weekly
digest) calls `record_alert` with an `occurrence` that names this happening of it; the alert's
key is (kind, occurrence, subscription), unique in the database. Recording the same occurrence
again, from a second worker or a retried task, adds nothing. Sending is the delivery job's
(`alerts.delivery`): an alert exists before anyone tries to send it.
"""

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Scope, Subscription, Timing

# Kinds that never wait for a daily digest: they are themselves the summary, or urgent.
NEVER_HELD = {AlertKind.HEALTH, AlertKind.WEEKLY_DIGEST}


@dataclass
class Message:
    """What an alert says: a subject line, plain-words body, a link, and JSON for webhooks."""

    subject: str
    body: str
    link: str = ""
    payload: dict = field(default_factory=dict)


def recipients(
    kind: str, *, group=None, users=(), teams=(), everyone: bool = False
) -> QuerySet[Subscription]:
    """The active subscriptions of `kind` that this happening reaches.

    A team's subscriptions when the team owns it (or is named); a user's when the user owns it,
    is in the owning team, or asked for every exception (scope "all"); `everyone` for what
    concerns all who subscribed (notifwatch's health).
    """
    subscriptions = Subscription.objects.filter(kind=kind, is_active=True)
    if everyone:
        return subscriptions
    user_ids = {user.pk for user in users}
    team_ids = {team.pk for team in teams}
    if group is not None:
        user_ids |= {group.assignee_id} - {None}
        team_ids |= {group.team_id} - {None}
    members = Team.members.through.objects.filter(team_id__in=team_ids).values("user_id")
    return subscriptions.filter(
        Q(team_id__in=team_ids)
        | Q(user_id__in=user_ids)
        | Q(user_id__in=members)
        | Q(user__isnull=False, scope=Scope.ALL)
    )


def record_alert(
    kind: str,
    occurrence: str,
    message: Message,
    *,
    group=None,
    users=(),
    teams=(),
    everyone: bool = False,
    subscriptions: QuerySet[Subscription] | None = None,
) -> list[Alert]:
    """One alert per subscription reached; the same occurrence again records nothing new.

    Returns the alerts of this occurrence (new or already there). Pass `subscriptions` to
    address exactly those (the weekly digest is one subscription's own message).
    """
    if subscriptions is None:
        subscriptions = recipients(kind, group=group, users=users, teams=teams, everyone=everyone)
    now = timezone.now()
    alerts = [
        Alert(
            key=alert_key(kind, occurrence, subscription.pk),
            subscription=subscription,
            kind=kind,
            group=group,
            subject=message.subject[:300],
            body=message.body,
            link=message.link[:500],
            payload=message.payload,
            status=(
                AlertStatus.HELD
                if subscription.timing == Timing.DAILY and kind not in NEVER_HELD
                else AlertStatus.PENDING
            ),
            next_attempt_at=now,
        )
        for subscription in subscriptions
    ]
    # The unique key decides: a row already there (another worker, a retry) is kept as it is.
    Alert.objects.bulk_create(alerts, ignore_conflicts=True)
    return list(Alert.objects.filter(key__in=[alert.key for alert in alerts]).order_by("id"))


def alert_key(kind: str, occurrence: str, subscription_id: int) -> str:
    # The subscription goes first in the budget: a long occurrence is cut, never the recipient.
    tail = f":{subscription_id}"
    return f"{kind}:{occurrence}"[: 300 - len(tail)] + tail
