"""Every change to an exception goes through these functions.

Each writes a GroupHistory row (the exception's own story) and an AuditEntry (the trail across
the product) in the same transaction. `actor` is a user, or None for the system, in which case
`rule` names what decided.
"""

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.actions import record_audit
from notifwatch.failures.impact import refresh_impact
from notifwatch.failures.models import (
    OPEN_STATUSES,
    FailureGroup,
    Fingerprint,
    GroupHistory,
    HistoryKind,
    Occurrence,
    Status,
)


def write_history(
    group: FailureGroup,
    kind: str,
    *,
    actor=None,
    rule: str = "",
    old=None,
    new=None,
    comment: str = "",
) -> GroupHistory:
    entry = GroupHistory.objects.create(
        group=group, actor=actor, rule=rule, kind=kind, old=old, new=new, comment=comment
    )
    record_audit(
        actor=actor,
        action=f"exception.{kind}",
        target=group,
        old=old,
        new=new,
        detail=comment,
        system_label=f"system: {rule}" if rule else "system",
    )
    return entry


def locked(group: FailureGroup) -> FailureGroup:
    return FailureGroup.objects.select_for_update().get(pk=group.pk)


def assign(
    group: FailureGroup, *, team: Team | None = None, assignee=None, actor=None, rule: str = ""
) -> FailureGroup:
    """Set the team and/or the person; assigning a person never clears the team.

    Giving it the owner it already has changes nothing and writes nothing: no history row, no
    audit entry ("assigned to the same owner again" is not a turning point).
    """
    with transaction.atomic():
        group = locked(group)
        old = {"team": group.team_id, "assignee": group.assignee_id, "status": group.status}
        if team is not None:
            group.team = team
        if assignee is not None:
            group.assignee = assignee
        if group.status == Status.NEW and (group.team_id or group.assignee_id):
            group.status = Status.ASSIGNED
        new = {"team": group.team_id, "assignee": group.assignee_id, "status": group.status}
        if new == old:
            return group
        group.save(update_fields=["team", "assignee", "status", "updated_at"])
        write_history(group, HistoryKind.ASSIGNED, actor=actor, rule=rule, old=old, new=new)
    return group


def set_status(
    group: FailureGroup, status: str, *, actor=None, rule: str = "", comment: str = ""
) -> FailureGroup:
    if status not in Status.values:
        raise ValueError(f"unknown status {status!r}")
    with transaction.atomic():
        group = locked(group)
        old = group.status
        group.status = status
        group.resolved_at = timezone.now() if status == Status.RESOLVED else group.resolved_at
        if status != Status.SNOOZED:
            group.snoozed_until = None
            group.snooze_wake_occurrences = None
        group.save(
            update_fields=[
                "status",
                "resolved_at",
                "snoozed_until",
                "snooze_wake_occurrences",
                "updated_at",
            ]
        )
        write_history(
            group,
            HistoryKind.STATUS,
            actor=actor,
            rule=rule,
            old={"status": old},
            new={"status": status},
            comment=comment,
        )
    return group


def snooze(
    group: FailureGroup,
    until: datetime,
    *,
    wake_at_occurrences: int | None = None,
    actor=None,
    comment: str = "",
) -> FailureGroup:
    """Hide until a date, or until it grows past `wake_at_occurrences`, whichever comes first."""
    with transaction.atomic():
        group = locked(group)
        old = {"status": group.status}
        group.status = Status.SNOOZED
        group.snoozed_until = until
        group.snooze_wake_occurrences = wake_at_occurrences
        group.save(
            update_fields=["status", "snoozed_until", "snooze_wake_occurrences", "updated_at"]
        )
        write_history(
            group,
            HistoryKind.SNOOZED,
            actor=actor,
            old=old,
            new={
                "status": Status.SNOOZED,
                "until": until.isoformat(),
                "wake_at_occurrences": wake_at_occurrences,
            },
            comment=comment,
        )
    return group


def wake(group: FailureGroup, *, rule: str, why: str) -> FailureGroup:
    """A snoozed exception comes back: to its owner if it has one."""
    return come_back(
        group, Status.SNOOZED, to=owned_status, kind=HistoryKind.WOKE, rule=rule, comment=why
    )


def regress(group: FailureGroup, *, rule: str, new_occurrences: int) -> FailureGroup:
    """New occurrences after it was resolved: reopen it, visibly."""
    return come_back(
        group,
        Status.RESOLVED,
        to=lambda _: Status.REGRESSED,
        kind=HistoryKind.REGRESSED,
        rule=rule,
        comment=f"{new_occurrences} new occurrence(s) after it was resolved",
    )


def come_back(
    group: FailureGroup,
    was: str,
    *,
    to: Callable[[FailureGroup], str],
    kind: str,
    rule: str,
    comment: str,
) -> FailureGroup:
    """The system brings an exception back from status `was`; from any other, nothing changes.

    Checked on the locked row: a person may have changed it since the system read it.
    """
    with transaction.atomic():
        group = locked(group)
        if group.status != was:
            return group
        group.status = to(group)
        # Back in the queue, it is not snoozed (a resolved one never has these set: set_status).
        group.snoozed_until = None
        group.snooze_wake_occurrences = None
        group.save(
            update_fields=["status", "snoozed_until", "snooze_wake_occurrences", "updated_at"]
        )
        write_history(
            group,
            kind,
            rule=rule,
            old={"status": was},
            new={"status": group.status},
            comment=comment,
        )
    return group


def owned_status(group: FailureGroup) -> str:
    return Status.ASSIGNED if (group.team_id or group.assignee_id) else Status.NEW


def add_note(group: FailureGroup, text: str, *, actor) -> GroupHistory:
    with transaction.atomic():
        return write_history(locked(group), HistoryKind.NOTE, actor=actor, comment=text)


def merge(
    groups: list[FailureGroup], into: FailureGroup, *, actor=None, rule: str = ""
) -> FailureGroup:
    """Fold exceptions into one: their fingerprints and occurrences move, their history stays."""
    with transaction.atomic():
        into = locked(into)
        for group in groups:
            if group.pk == into.pk:
                continue
            group = locked(group)
            Fingerprint.objects.filter(group=group).update(group=into)
            # Occurrences already in the target stay once (the unique constraints).
            for occurrence in Occurrence.objects.filter(group=group):
                duplicate = Occurrence.objects.filter(
                    group=into,
                    notification_id=occurrence.notification_id,
                    raw_event_id=occurrence.raw_event_id,
                    subject=occurrence.subject,
                ).exists()
                if duplicate:
                    occurrence.delete()
                else:
                    occurrence.group = into
                    occurrence.save(update_fields=["group"])
            group.merged_into = into
            old_status = group.status
            group.status = Status.RESOLVED if old_status in OPEN_STATUSES else old_status
            group.save(update_fields=["merged_into", "status", "updated_at"])
            write_history(
                group,
                HistoryKind.MERGED,
                actor=actor,
                rule=rule,
                old={"status": old_status},
                new={"merged_into": into.pk},
            )
            write_history(
                into, HistoryKind.MERGED, actor=actor, rule=rule, new={"merged_from": group.pk}
            )
        into.first_seen = min([into.first_seen, *[g.first_seen for g in groups]])
        into.last_seen = max([into.last_seen, *[g.last_seen for g in groups]])
        into.save(update_fields=["first_seen", "last_seen", "updated_at"])
        refresh_impact([into.pk])
    return FailureGroup.objects.get(pk=into.pk)
