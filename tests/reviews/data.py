"""Realistic exceptions over a few weeks: events through the real ingest, then the real rules."""

from datetime import datetime, timedelta

from django.utils import timezone

from notifwatch.deliveries.models import Notification
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind
from tests.exceptions.data import bounce, record_failures, send


def ago(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return timezone.now() - timedelta(days=days, hours=hours, minutes=minutes)


def bounces(source, purpose: str, count: int, at: datetime, *, first: int = 0) -> FailureGroup:
    """`count` more customers' `purpose` emails bounced around `at`; their exception."""
    send(
        source,
        *(
            bounce(
                f"{purpose}-{n}",
                (at + timedelta(minutes=n)).isoformat(),
                f"cus_{purpose}_{n}",
                purpose=purpose,
            )
            for n in range(first, first + count)
        ),
    )
    failed = Notification.objects.filter(source=source, purpose=purpose, counts_as_failure=True)
    return record_failures(failed)


def silence(source, at: datetime) -> FailureGroup:
    """The source stopped reporting: one silent hour, as the silence rule records it."""
    from notifwatch.failures.grouping import Problem

    (group_id,) = record_problems(
        [
            Problem(
                kind=Kind.SILENCE,
                fingerprint=f"silence|{source.pk}",
                title=f"{source}: nothing received since {at:%a %H:%M} (usually about 40 events in 6 hours)",
                occurred_at=at,
                subject=f"{source.slug}:{at.isoformat()}",
                source_id=source.pk,
                fix_owner="our_setup",
                detail={"mode": "stopped_sending", "source": source.slug, "hours": 6},
            )
        ],
        rule="silence",
    )
    return FailureGroup.objects.get(pk=group_id)


def created(group: FailureGroup, when: datetime) -> FailureGroup:
    """Pretend the exception was first recorded at `when` (older than this week's)."""
    FailureGroup.objects.filter(pk=group.pk).update(created_at=when)
    group.refresh_from_db()
    return group
