"""An exception's figures: occurrences, customers affected, reached anyway or not at all.

Below both grouping (which counts new problems) and actions (a merge moves occurrences): each
recounts here after changing occurrences, so neither has to import the other for it.
"""

from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from notifwatch.deliveries.models import FinalStatus, Notification
from notifwatch.failures.models import FailureGroup, Occurrence

# A notification that reached its customer: a spam complaint means it was delivered.
REACHED = (FinalStatus.DELIVERED, FinalStatus.COMPLAINED)

WEEK = timedelta(days=7)
DAY = timedelta(days=1)
RECENT_FIELDS = ["recent_occurrences", "week_before_occurrences", "day_occurrences"]


def recent_counts(now: datetime) -> dict:
    """Aggregates of RECENT_FIELDS over occurrences, as of `now`."""
    return {
        "recent_occurrences": Count("id", filter=Q(occurred_at__gte=now - WEEK)),
        "week_before_occurrences": Count(
            "id", filter=Q(occurred_at__gte=now - 2 * WEEK, occurred_at__lt=now - WEEK)
        ),
        "day_occurrences": Count("id", filter=Q(occurred_at__gte=now - DAY)),
    }


def refresh_impact(group_ids) -> None:
    """Occurrences, customers affected, reached anyway or not at all; first and last seen."""
    group_ids = set(group_ids)
    if not group_ids:
        return
    now = timezone.now()
    counts = {
        row["group_id"]: row
        for row in Occurrence.objects.filter(group_id__in=group_ids)
        .values("group_id")
        .annotate(
            n=Count("id"),
            customers=Count("customer_id", distinct=True, filter=~Q(customer_id="")),
            first=Min("occurred_at"),
            last=Max("occurred_at"),
            **recent_counts(now),
        )
    }
    for group in FailureGroup.objects.filter(pk__in=group_ids):
        row = counts.get(group.pk)
        if row is None:
            continue
        customers = set(
            Occurrence.objects.filter(group=group)
            .exclude(customer_id="")
            .values_list("customer_id", flat=True)
            .distinct()
        )
        reached = reached_anyway(group, customers)
        FailureGroup.objects.filter(pk=group.pk).update(
            occurrences=row["n"],
            customers_affected=row["customers"],
            customers_reached_anyway=len(reached),
            customers_not_reached=row["customers"] - len(reached),
            first_seen=min(group.first_seen, row["first"]),
            last_seen=max(group.last_seen, row["last"]),
            **{name: row[name] for name in RECENT_FIELDS},
            updated_at=now,
        )


def reached_anyway(group: FailureGroup, customers: set[str]) -> set[str]:
    """Customers who got the same purpose some other way: a later attempt or another channel."""
    if not customers or not group.purpose:
        return set()
    return set(
        Notification.objects.filter(
            customer_id__in=customers, purpose=group.purpose, final_status__in=REACHED
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )
