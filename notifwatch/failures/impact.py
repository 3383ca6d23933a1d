"""An exception's figures: occurrences, people affected, reached anyway or not at all.

Below both grouping (which counts new problems) and actions (a merge moves occurrences): each
recounts here after changing occurrences, so neither has to import the other for it.

Who is counted. The figures keep their names (`customers_affected`, `customers_reached_anyway`,
`customers_not_reached`: the exports and the API name them so) and count people: each distinct
customer id, plus, for problems whose notification carries no customer id, each distinct
recipient (address, phone number or device) of those. Two failures to one address without a
customer id are one person, not two and not none. How many of them were counted by recipient is
kept beside them (`customers_affected_by_recipient`, `customers_not_reached_by_recipient`), so
the queue and the review can say which count they show. Problems that are not notifications (a
quarantined event, a silent hour) have no people: their impact is their occurrences, except
for a provider that stopped reporting, whose impact is the people its sends left without an
outcome (counted by the silence rule, kept in the exception's detail).

Reached anyway. A problem's customer was reached anyway when a *replacement* reached them: another
notification of the same purpose to the same person (the same customer id; the same recipient
when there is no customer id) that was delivered (a spam complaint means it was delivered) and
that replaced this one:

- it shares a business reference with it (the same `order_id`, `ticket_id` or `invoice_id` value
  under the same name): a resend for the same order counts however much later it went, or
- it started within the purpose's timing window after the failure (windows.py): at or after the
  moment the problem occurred, and not later than that moment plus the window.

Never a notification that started before the failure (a delivery months earlier says nothing
about this one), and never the failed notification itself. For the kinds whose notification was
not itself a failure (a late one, a duplicate, one sent without a customer id) that notification
counts once it reached its customer: late, but it arrived.

A person counts as reached anyway only when *every* problem of theirs in the exception was
replaced: a customer with two failed order confirmations and a resend for one of them was not
reached for the other order, so they are "not reached". Hence affected = reached anyway + not
reached, for customers and for recipients alike.

Replacements arrive after the failure, usually after the exception last grew, so each detection
pass also recounts the exceptions that a notification delivered since the previous passes may
have replaced a problem of (`refresh_replaced`).

Everything is counted in the database, one grouped query per recount whatever the number of
occurrences (100k and more): each occurrence looks up its replacements through the indexes on
the notifications' customer id, recipient and references.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Value,
    When,
)
from django.utils import timezone

from notifwatch.deliveries.models import FinalStatus, Notification, NotificationRef
from notifwatch.failures.models import FailureGroup, Kind, Occurrence
from notifwatch.failures.windows import FALLBACK, Windows

# A notification that reached its customer: a spam complaint means it was delivered.
REACHED = (FinalStatus.DELIVERED, FinalStatus.COMPLAINED)
# The references that name one business object (an order, a ticket, an invoice): a notification
# sharing one of them with a failed one is about the same thing. Other keys a sender puts in
# `refs` (a campaign, a store) are shared by unrelated messages.
BUSINESS_REFS = ("order_id", "ticket_id", "invoice_id")
# Kinds whose own notification was no failure of delivery: once it reached its customer (a late
# one arrived, a duplicate did, one sent without a customer id was delivered) they were reached.
OWN_DELIVERY_COUNTS = (Kind.LATE, Kind.DUPLICATE_SEND, Kind.IDENTITY)
# How far back each detection pass looks for notifications that reached their customer, to
# recount the exceptions they may have replaced a problem of. Passes run every minute; the
# overlap covers a slow pass or a worker restart. After a longer stop, an exception's figures
# catch up when it next grows.
REPLACED_LOOKBACK = timedelta(minutes=15)

WEEK = timedelta(days=7)
DAY = timedelta(days=1)
RECENT_FIELDS = ["recent_occurrences", "week_before_occurrences", "day_occurrences"]
IMPACT_FIELDS = [
    "occurrences",
    "customers_affected",
    "customers_reached_anyway",
    "customers_not_reached",
    "customers_affected_by_recipient",
    "customers_not_reached_by_recipient",
    "first_seen",
    "last_seen",
    *RECENT_FIELDS,
]


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
    """Occurrences, people affected, reached anyway or not at all; first and last seen.

    Writes only the exceptions whose figures moved.
    """
    group_ids = set(group_ids)
    if not group_ids:
        return
    now = timezone.now()
    occurrences = Occurrence.objects.filter(group_id__in=group_ids).annotate(
        replaced_until=replacement_deadline(group_ids)
    )
    by_customer = ~Q(customer_id="")
    by_recipient = Q(customer_id="", notification__isnull=False) & ~Q(notification__recipient="")
    counts = {
        row["group_id"]: row
        for row in occurrences.values("group_id")
        .annotate(
            n=Count("id"),
            customers=Count("customer_id", distinct=True, filter=by_customer),
            customers_not_reached=Count(
                "customer_id", distinct=True, filter=by_customer & ~reached("customer_id")
            ),
            recipients=Count("notification__recipient", distinct=True, filter=by_recipient),
            recipients_not_reached=Count(
                "notification__recipient",
                distinct=True,
                filter=by_recipient & ~reached("notification__recipient"),
            ),
            first=Min("occurred_at"),
            last=Max("occurred_at"),
            **recent_counts(now),
        )
        .order_by()
    }
    for group in FailureGroup.objects.filter(pk__in=group_ids).only(*IMPACT_FIELDS, "detail"):
        row = counts.get(group.pk)
        if row is None:
            continue
        affected = row["customers"] + row["recipients"]
        not_reached = row["customers_not_reached"] + row["recipients_not_reached"]
        figures = {
            "occurrences": row["n"],
            "customers_affected": affected,
            "customers_reached_anyway": affected - not_reached,
            "customers_not_reached": not_reached,
            "customers_affected_by_recipient": row["recipients"],
            "customers_not_reached_by_recipient": row["recipients_not_reached"],
            "first_seen": min(group.first_seen, row["first"]),
            "last_seen": max(group.last_seen, row["last"]),
            **{name: row[name] for name in RECENT_FIELDS},
        }
        waiting = (group.detail or {}).get("people_without_outcome")
        if waiting:
            # Nobody can say yet whether they got it: not reached until an outcome comes.
            figures.update(customers_affected=waiting, customers_not_reached=waiting)
        if all(getattr(group, name) == value for name, value in figures.items()):
            continue
        FailureGroup.objects.filter(pk=group.pk).update(**figures, updated_at=now)


def replacement_deadline(group_ids) -> ExpressionWrapper:
    """Per occurrence, the latest start of a replacement without a shared reference: when the
    problem occurred plus its notification's timing window (source and purpose)."""
    windows = Windows()
    pairs = (
        Occurrence.objects.filter(group_id__in=group_ids, notification__isnull=False)
        .values_list("notification__source_id", "notification__purpose")
        .distinct()
        .order_by()
    )
    # One branch per window, not per source and purpose: a handful whatever the exceptions.
    matching: dict[timedelta, Q] = defaultdict(Q)
    for source_id, purpose in pairs:
        window = windows.window_for(source_id, purpose)
        matching[window] |= Q(notification__source_id=source_id, notification__purpose=purpose)
    window = Case(
        *(When(condition, then=Value(length)) for length, condition in matching.items()),
        default=Value(FALLBACK),
        output_field=DurationField(),
    )
    return ExpressionWrapper(F("occurred_at") + window, output_field=DateTimeField())


def reached(person: str) -> Q:
    """On an occurrence: its person (`person` names the field that identifies them: the
    customer id, or the notification's recipient) was reached anyway for this problem."""
    own = Q(group__kind__in=OWN_DELIVERY_COUNTS, notification__final_status__in=REACHED)
    return own | Q(Exists(replaced_in_window(person))) | Q(Exists(replaced_by_reference(person)))


def replacement(person: str, prefix: str = "", outer=OuterRef) -> Q:
    """A notification (`prefix` leads to it) that reached the occurrence's person with its
    purpose, started at or after the problem, other than its own notification. `outer` reaches
    the occurrence's fields from where the condition is used."""
    field = "customer_id" if person == "customer_id" else "recipient"
    return (
        Q(
            **{
                f"{prefix}{field}": outer(person),
                f"{prefix}purpose": outer("notification__purpose"),
                f"{prefix}final_status__in": REACHED,
                f"{prefix}first_event_at__gte": outer("occurred_at"),
            }
        )
        & ~Q(**{f"{prefix}purpose": ""})
        & ~Q(**{f"{prefix}pk": outer("notification_id")})
    )


def replaced_in_window(person: str):
    return Notification.objects.filter(
        replacement(person), first_event_at__lte=OuterRef("replaced_until")
    )


def replaced_by_reference(person: str):
    """References of the occurrence's notification that a replacement carries too."""
    carried = NotificationRef.objects.filter(
        replacement(person, "notification__", outer=lambda name: OuterRef(OuterRef(name))),
        name=OuterRef("name"),
        value=OuterRef("value"),
    )
    return NotificationRef.objects.filter(
        notification_id=OuterRef("notification_id"), name__in=BUSINESS_REFS
    ).filter(Exists(carried))


def refresh_replaced(now: datetime | None = None) -> set[int]:
    """Recount the exceptions that notifications delivered lately may have replaced a problem
    of; returns their ids.

    Read from the notifications that reached their customer in the last REPLACED_LOOKBACK: one
    query per kind of person (customer id, or recipient without one) over the occurrences, each
    probing for a recent replacement of the same person and purpose through the notifications'
    indexes. Its cost follows the occurrences, not the deliveries: a burst of 50k deliveries
    (a big import) cost 1.1 s a pass when the recent people were looked up in chunks, 0.03 s so.
    """
    since = (now or timezone.now()) - REPLACED_LOOKBACK
    recent = Notification.objects.filter(updated_at__gte=since, final_status__in=REACHED).exclude(
        purpose=""
    )
    if not recent.exists():
        return set()
    # A late notification that arrived after all (or another kind whose own delivery counts).
    found = set(
        Occurrence.objects.filter(
            group__kind__in=OWN_DELIVERY_COUNTS, notification__in=recent.values("pk")
        )
        .values_list("group_id", flat=True)
        .distinct()
        .order_by()
    )
    for field, own in (("customer_id", ~Q(customer_id="")), ("recipient", Q(customer_id=""))):
        replacing = recent.filter(
            **{field: OuterRef(f"notification__{field}")},
            purpose=OuterRef("notification__purpose"),
            first_event_at__gte=OuterRef("occurred_at"),
        ).exclude(pk=OuterRef("notification_id"))
        found |= set(
            Occurrence.objects.filter(own, notification__isnull=False)
            .filter(Exists(replacing))
            .values_list("group_id", flat=True)
            .distinct()
            .order_by()
        )
    refresh_impact(found)
    return found
