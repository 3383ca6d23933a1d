"""What the read API answers, as plain data: one page of exceptions or notifications, one
exception's story, the sources' health. Callable without HTTP; the views only serialise.

The same filters, order, words and masking as the pages: the queue's QueueFilter and impact
order, the search page's lookups, the exception page's explanation, the sources page's facts.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.masking import mask_recipient, mask_text, shown_text
from notifwatch.deliveries.filters import NotificationFilter
from notifwatch.deliveries.lookup import (
    find_notifications,
    recipient_spellings,
    recorded_notifications,
    spellings,
)
from notifwatch.deliveries.models import Notification, NotificationRef
from notifwatch.deliveries.wording import verdict, words
from notifwatch.failures.explain import explain
from notifwatch.failures.filters import (
    QueueFilter,
    filter_querystring,
    make_cursor,
    page_after,
    parse_cursor,
)
from notifwatch.failures.models import FailureGroup, GroupHistory, Occurrence
from notifwatch.failures.wording import history_rows, person
from notifwatch.ingest.models import RawEvent, Source
from notifwatch.ingest.source_facts import source_facts
from notifwatch.lib.paging import older_than, parse_time_cursor, time_cursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SAMPLE_NOTIFICATIONS = 5
RECENT_WINDOW = timedelta(hours=24)
# The identifiers a support tool has at hand, each looked up on its own index.
LOOKUP_PARAMS = ("customer_id", "order_id", "ticket_id", "invoice_id", "recipient", "q")
REF_PARAMS = ("order_id", "ticket_id", "invoice_id")


class Refused(Exception):
    """A request the API cannot answer as asked: the status and what to fix."""

    def __init__(self, status: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or {}


@dataclass
class Page:
    items: list[dict]
    # The query string of the next page, or None on the last one.
    next_query: str | None


def page_url(name: str, *args) -> str:
    """A page of the app for people, at its public address."""
    return settings.NOTIFWATCH_BASE_URL + reverse(name, args=args)


def moment(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def page_limit(params: QueryDict) -> int:
    raw = params.get("limit", "")
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Refused(400, f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def filter_errors(filterset) -> dict[str, list[str]]:
    return {name: [str(error) for error in errors] for name, errors in filterset.errors.items()}


def with_params(querystring: str, **extra) -> str:
    params = QueryDict(querystring, mutable=True)
    for name, value in extra.items():
        params[name] = str(value)
    return params.urlencode()


# --- Exceptions ---------------------------------------------------------------------------


def exceptions_page(params: QueryDict, *, personal: bool, request=None) -> Page:
    """One page of the queue: its filters (the queue page's GET names), impact order, keyset
    paging by `after`; open exceptions unless `status` says otherwise."""
    filterset = QueueFilter(params, queryset=FailureGroup.objects.all(), request=request)
    if not filterset.is_valid():
        raise Refused(400, "These filters do not work.", filter_errors(filterset))
    limit = page_limit(params)
    cursor, position = None, 0
    if params.get("after"):
        parsed = parse_cursor(params["after"])
        if parsed is None:
            raise Refused(400, "after is not a cursor this API gave: start from the first page.")
        cursor, position = parsed
    rows = list(
        page_after(filterset.qs, cursor).prefetch_related("source", "team", "assignee")[: limit + 1]
    )
    more, rows = len(rows) > limit, rows[:limit]
    next_query = None
    if more:
        after = make_cursor(rows[-1], position + len(rows))
        next_query = with_params(filter_querystring(params), after=after, limit=limit)
    return Page([exception_item(group, personal) for group in rows], next_query)


def exception_item(group: FailureGroup, personal: bool) -> dict:
    explanation = explain(group, personal)
    return {
        "id": group.pk,
        "kind": group.kind,
        "status": group.status,
        # Titles are written by detection rules and may quote an address or number.
        "title": group.title if personal else mask_text(group.title),
        "reason": explanation.sentence,
        "suggested_action": explanation.action,
        "fix_owner": explanation.fix_owner,
        "category": group.reason_category,
        "where": {
            "source": group.source.slug if group.source else None,
            "channel": group.channel,
            "purpose": group.purpose,
        },
        "impact": {
            "customers_affected": group.customers_affected,
            "customers_not_reached": group.customers_not_reached,
            "customers_reached_anyway": group.customers_reached_anyway,
            "occurrences": group.occurrences,
            "occurrences_last_7_days": group.recent_occurrences,
        },
        "owner": {
            "team": {"id": group.team.pk, "name": group.team.name} if group.team_id else None,
            "assignee": (
                {"id": group.assignee.pk, "name": person(group.assignee)}
                if group.assignee_id
                else None
            ),
        },
        "first_seen": moment(group.first_seen),
        "last_seen": moment(group.last_seen),
        "snoozed_until": moment(group.snoozed_until),
        "merged_into": group.merged_into_id,
        "url": page_url("exception_detail", group.pk),
    }


def exception_detail(pk: int, *, personal: bool) -> dict:
    """One exception: what the list says, its facts, its history and its newest notifications."""
    group = FailureGroup.objects.select_related("source", "team", "assignee").filter(pk=pk).first()
    if group is None:
        raise Refused(404, f"No exception #{pk}.")
    item = exception_item(group, personal)
    item["facts"] = [
        {"label": label, "text": text} for label, text, _ in explain(group, personal).facts
    ]
    item["history"] = history(group, personal)
    item["sample_notifications"] = sample_notifications(group, personal)
    return item


def history(group: FailureGroup, personal: bool) -> list[dict]:
    """Every turning point, oldest first: the page's words beside the stored old and new."""
    entries = GroupHistory.objects.filter(group=group).values_list("kind", "old", "new")
    # history_rows reads the same rows in the same (at, id) order, and words them.
    return [
        {
            "kind": kind,
            "at": moment(row.at),
            "actor": row.who,
            "system": row.system,
            "what": row.what,
            "old": old,
            "new": new,
            "comment": row.comment,
        }
        for (kind, old, new), row in zip(entries, history_rows(group, personal), strict=True)
    ]


def sample_notifications(group: FailureGroup, personal: bool) -> list[dict]:
    newest = (
        Occurrence.objects.filter(group=group, notification__isnull=False)
        .select_related("notification__source")
        .order_by("-occurred_at", "-id")[:SAMPLE_NOTIFICATIONS]
    )
    return [notification_item(o.notification, personal) for o in newest]


# --- Notifications ------------------------------------------------------------------------


def notifications_page(params: QueryDict, *, personal: bool, request=None) -> Page:
    """Notifications for one customer, order, ticket, invoice or recipient (several narrow
    each other; `q` is the search page's any-identifier lookup), with the search page's
    filters, newest activity first, keyset paging by `before`."""
    asked = {name: params.get(name, "").strip()[:255] for name in LOOKUP_PARAMS}
    asked = {name: value for name, value in asked.items() if value}
    if not asked:
        names = ", ".join(LOOKUP_PARAMS)
        raise Refused(400, f"Say whose notifications: one of {names}.")
    limit = page_limit(params)
    found = recorded_notifications()
    for name, value in asked.items():
        found = found.filter(pk__in=matching(name, value))
    filterset = NotificationFilter(params, queryset=found, request=request)
    if not filterset.is_valid():
        raise Refused(400, "These filters do not work.", filter_errors(filterset))
    found = filterset.qs
    if params.get("before"):
        cursor = parse_time_cursor(params["before"])
        if cursor is None:
            raise Refused(400, "before is not a cursor this API gave: start from the first page.")
        found = older_than(found, "last_event_at", *cursor)
    rows = list(found[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    next_query = None
    if more:
        last = rows[-1]
        kept = QueryDict(mutable=True)
        for name, value in asked.items():
            kept[name] = value
        query = "&".join(filter(None, [kept.urlencode(), filterset.querystring()]))
        next_query = with_params(
            query, before=time_cursor(last.last_event_at, last.pk), limit=limit
        )
    return Page([notification_item(n, personal) for n in rows], next_query)


def matching(name: str, value: str) -> QuerySet:
    """The ids of the notifications one identifier names, as the search page spells it."""
    if name == "q":
        return find_notifications(value).values("id")
    if name == "customer_id":
        return Notification.objects.filter(customer_id__in=spellings(value)).values("id")
    if name == "recipient":
        return Notification.objects.filter(recipient__in=recipient_spellings(value)).values("id")
    return NotificationRef.objects.filter(name=name, value__in=spellings(value)).values(
        "notification_id"
    )


def notification_item(n: Notification, personal: bool) -> dict:
    said = verdict(n, personal)
    return {
        "id": n.pk,
        "source": n.source.slug,
        "notification_key": n.notification_key,
        "channel": n.channel,
        "purpose": n.purpose,
        "purpose_words": words(n.purpose),
        "customer_id": n.customer_id,
        "recipient": n.recipient if personal else mask_recipient(n.recipient),
        "refs": n.refs,
        "final_status": n.final_status,
        "verdict": {
            "tone": said.tone,
            "headline": said.headline,
            "reason": said.reason.sentence if said.reason else "",
            "suggested_action": said.reason.action if said.reason else "",
            "fix_owner": said.fix_owner,
            "error_code": said.error_code,
            "error_message": said.error_message,
        },
        "counts_as_failure": n.counts_as_failure,
        "attempts": n.attempts,
        "duplicate_sends": n.duplicate_sends,
        "first_event_at": moment(n.first_event_at),
        "last_event_at": moment(n.last_event_at),
        "settled_at": moment(n.settled_at),
        "url": page_url("notification_detail", n.pk),
    }


# --- Sources ------------------------------------------------------------------------------


def sources_health(*, personal: bool, now: datetime | None = None) -> list[dict]:
    """Each source: when it last sent, what its last 24 hours came to, what waits for a
    person, and refused calls (the sources page's facts)."""
    now = now or timezone.now()
    sources = list(Source.objects.order_by("slug"))
    recent: dict[int, dict[str, int]] = {s.pk: {} for s in sources}
    for source_id, outcome, n in (
        RawEvent.objects.filter(source_id__in=recent, received_at__gte=now - RECENT_WINDOW)
        .values("source_id", "outcome")
        .annotate(n=Count("id"))
        .values_list("source_id", "outcome", "n")
        .order_by()
    ):
        recent[source_id][outcome] = n
    return [
        {
            "slug": f.source.slug,
            "name": f.source.name,
            "kind": f.source.kind,
            "active": f.source.is_active,
            "last_received": moment(f.last_received),
            "last_24_hours": recent[f.source.pk],
            "notifications": f.notifications,
            "waiting": {"quarantined": f.quarantined, "failed": f.failed},
            "rejected_calls_last_7_days": {
                "count": f.rejected,
                "since": moment(f.rejected_since),
                "last_reason": shown_text(f.rejected_reason, personal=personal),
            },
            "url": page_url("source_detail", f.source.slug),
        }
        for f in source_facts(sources)
    ]
