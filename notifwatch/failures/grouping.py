"""Turning detected problems into exceptions: fingerprints, occurrences, lifecycle.

Detection rules (notifwatch/failures/detection.py) describe each problem as a `Problem` with a
fingerprint; `record_problems` finds or creates the exception for each fingerprint, adds the
occurrences it has not counted yet, moves the lifecycle on (regressed, woke up) and recounts
the exception's figures (impact.py).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction

from notifwatch.failures.actions import assign, regress, wake, write_history
from notifwatch.failures.impact import refresh_impact
from notifwatch.failures.models import (
    FailureGroup,
    Fingerprint,
    HistoryKind,
    Occurrence,
    OwnerRule,
    Status,
)

# Bump when a rule's fingerprint changes; old fingerprints keep pointing at their exceptions.
RULES_VERSION = 1


@dataclass
class Problem:
    kind: str
    fingerprint: str
    title: str
    occurred_at: datetime
    notification_id: int | None = None
    raw_event_id: int | None = None
    subject: str = ""
    customer_id: str = ""
    source_id: int | None = None
    channel: str = ""
    purpose: str = ""
    reason_category: str = ""
    fix_owner: str = ""
    reason_key: str = ""
    detail: dict = field(default_factory=dict)


def record_problems(problems: list[Problem], *, rule: str) -> set[int]:
    """Count these problems in their exceptions; return the ids of exceptions that grew."""
    by_fingerprint: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        by_fingerprint[problem.fingerprint].append(problem)
    grown: set[int] = set()
    for value, group_problems in by_fingerprint.items():
        group, created = group_for(value, group_problems[0], rule=rule)
        # The occurrences and the figures they move commit together: a pass killed in between
        # would leave rows that the next pass skips (already counted) under figures of 0.
        with transaction.atomic():
            added = add_occurrences(group, group_problems)
            if added or created:
                grown.add(group.pk)
                advance_lifecycle(group, added, created=created, rule=rule)
                refresh_impact({group.pk})
    return grown


def group_for(value: str, problem: Problem, *, rule: str) -> tuple[FailureGroup, bool]:
    """The exception of a fingerprint, created once even when two workers race for it."""
    found = Fingerprint.objects.filter(version=RULES_VERSION, value=value).select_related("group")
    fingerprint = found.first()
    if fingerprint:
        return canonical(fingerprint.group), False
    try:
        with transaction.atomic():
            group = FailureGroup.objects.create(
                kind=problem.kind,
                title=problem.title[:300],
                source_id=problem.source_id,
                channel=problem.channel,
                purpose=problem.purpose,
                reason_category=problem.reason_category,
                fix_owner=problem.fix_owner,
                reason_key=problem.reason_key,
                detail=problem.detail,
                first_seen=problem.occurred_at,
                last_seen=problem.occurred_at,
            )
            Fingerprint.objects.create(version=RULES_VERSION, value=value, group=group)
            write_history(group, HistoryKind.CREATED, rule=rule, new={"title": group.title})
    except IntegrityError:
        # Another worker created it first: its exception is the one.
        return canonical(Fingerprint.objects.get(version=RULES_VERSION, value=value).group), False
    route_owner(group, rule=rule)
    return group, True


def canonical(group: FailureGroup) -> FailureGroup:
    """Follow merges to the exception that is kept."""
    seen = set()
    while group.merged_into_id and group.pk not in seen:
        seen.add(group.pk)
        group = group.merged_into
    return group


def add_occurrences(group: FailureGroup, problems: list[Problem]) -> int:
    before = Occurrence.objects.filter(group=group).count()
    Occurrence.objects.bulk_create(
        [
            Occurrence(
                group=group,
                notification_id=p.notification_id,
                raw_event_id=p.raw_event_id,
                subject=p.subject,
                customer_id=p.customer_id,
                occurred_at=p.occurred_at,
            )
            for p in problems
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return Occurrence.objects.filter(group=group).count() - before


def advance_lifecycle(group: FailureGroup, added: int, *, created: bool, rule: str) -> None:
    group.refresh_from_db()
    if created:
        return
    if group.status == Status.RESOLVED:
        regress(group, rule=rule, new_occurrences=added)
    elif group.status == Status.SNOOZED and group.snooze_wake_occurrences:
        total = Occurrence.objects.filter(group=group).count()
        if total >= group.snooze_wake_occurrences:
            wake(group, rule=rule, why=f"grew to {total} occurrences while snoozed")


def route_owner(group: FailureGroup, *, rule: str) -> None:
    """The first owner rule that matches gives a new exception its team."""
    for owner_rule in OwnerRule.objects.select_related("team"):
        if matches(owner_rule, group):
            assign(group, team=owner_rule.team, rule=f"owner rule {owner_rule.pk} ({rule})")
            return


def matches(rule: OwnerRule, group: FailureGroup) -> bool:
    wanted = {
        "kind": rule.kind,
        "channel": rule.channel,
        "purpose": rule.purpose,
        "reason_category": rule.reason_category,
        "fix_owner": rule.fix_owner,
    }
    if rule.source_id and rule.source_id != group.source_id:
        return False
    return all(not value or getattr(group, name) == value for name, value in wanted.items())
