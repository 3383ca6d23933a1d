"""Pages about notifications: the landing page, the support lookup and one notification's story."""

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required, sees_personal_data
from notifwatch.accounts.masking import mask_recipient, shown_text
from notifwatch.alerts.failed import failed_alerts
from notifwatch.audit.downloads import EXPORT_ROLES, download
from notifwatch.audit.filters import trail_url
from notifwatch.deliveries.filters import NotificationFilter
from notifwatch.deliveries.lookup import find_notifications, recorded_notifications
from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.deliveries.overview import build_overview
from notifwatch.deliveries.wording import (
    duplicate_note,
    identity_hint,
    reference_rows,
    verdict,
    words,
)
from notifwatch.failures.reasons import reason_by_key
from notifwatch.ingest.parsing import pretty_body
from notifwatch.lib.paging import older_than, parse_time_cursor, time_cursor

PAGE_SIZE = 50
HOME_DAYS = 7
# Of a raw payload on the timeline, this many characters at most; its raw event page shows more.
PAYLOAD_SHOWN_CHARS = 20_000


@role_required(*READ_ROLES)
def home(request: HttpRequest) -> HttpResponse:
    overview = build_overview()
    week = overview.total.week
    ctx = {
        "o": overview,
        "days": HOME_DAYS,
        "statuses": overview.statuses,
        "total": week.sent,
        "failures": week.failures,
        "quarantined": overview.quarantined,
        # Alerts that could not be sent are a problem of their own (the alerts app is above
        # deliveries, so the page reads them, not the overview).
        "failed_alerts": failed_alerts(),
    }
    return render(request, "deliveries/home.html", ctx)


@role_required(*READ_ROLES)
def notification_search(request: HttpRequest) -> HttpResponse:
    """Find notifications by an identifier, narrowed by filters, or list them by filters alone."""
    search = search_of(request)
    cursor = parse_time_cursor(request.GET.get("before", ""))
    notifications: list[Notification] = []
    older_url = ""
    if search.found is not None:
        found = search.found
        if cursor:
            found = older_than(found, "last_event_at", *cursor)
        notifications = list(found[: PAGE_SIZE + 1])
        if len(notifications) > PAGE_SIZE:
            notifications = notifications[:PAGE_SIZE]
            last = notifications[-1]
            older_url = "?" + search.query(before=time_cursor(last.last_event_at, last.pk))
        show_people(notifications, sees_personal_data(request.user))
    ctx = {
        "q": search.q,
        "form": search.filterset.form,
        "filtered": search.filtered,
        "asked": search.found is not None,
        "notifications": notifications,
        "older_url": older_url,
        "first_page_url": "?" + search.query() if cursor else "",
        "may_export": membership_of(request.user).role in EXPORT_ROLES,
        "search_query": search.query(),
    }
    template = "deliveries/notification_search.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
        # The filter row sits outside the results: send it along, with its errors.
        ctx["filters_out_of_band"] = True
    return render(request, template, ctx)


@role_required(*EXPORT_ROLES)
def notification_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Every notification the search and filters match (all pages, not only the one shown),
    streamed; the audit entry records the search and the filters."""
    search = search_of(request)
    if not search.valid:
        return HttpResponseBadRequest("These filters do not work: filter the search again.")
    found = search.found if search.found is not None else Notification.objects.none()
    filters = ({"q": search.q} if search.q else {}) | search.filterset.audit_record()
    return download(request, "notifications", fmt, found, filters=filters, name="search")


@dataclass
class Search:
    """What the search page was asked: a query, filters, and what they match."""

    q: str
    filterset: NotificationFilter
    filtered: bool  # some filter was given (valid or not)
    valid: bool
    # Newest activity first; None when nothing was asked, or a filter does not work.
    found: QuerySet[Notification] | None

    def query(self, **extra: str) -> str:
        """The search and filters as a query string (no cursor unless given in `extra`)."""
        parts = [
            urlencode({"q": self.q}) if self.q else "",
            self.filterset.querystring(),
            urlencode(extra) if extra else "",
        ]
        return "&".join(part for part in parts if part)


def search_of(request: HttpRequest) -> Search:
    q = search_text(request)
    base = find_notifications(q) if q else recorded_notifications()
    filterset = NotificationFilter(request.GET, queryset=base, request=request)
    filtered = filterset.is_filtered()
    valid = filterset.is_valid()
    found = filterset.qs if (q or filtered) and valid else None
    return Search(q, filterset, filtered, valid, found)


def search_text(request: HttpRequest) -> str:
    return request.GET.get("q", "").strip()[:255]


@role_required(*READ_ROLES)
def notification_detail(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(Notification.objects.select_related("source"), pk=pk)
    personal = sees_personal_data(request.user)
    events = list(
        notification.events.select_related("raw_event").order_by("occurred_at", "id")
        if personal
        else notification.events.order_by("occurred_at", "id")
    )
    for event in events:
        event.reason = reason_by_key(event.reason_key)
        event.payload_text = payload_text(event) if personal else ""
        event.error_message = shown_text(event.error_message, personal=personal)
    show_people([notification], personal)
    ctx = {
        "n": notification,
        "verdict": verdict(notification, personal),
        "identity_hint": identity_hint(notification),
        "duplicate_note": duplicate_note(notification),
        "refs": reference_rows(notification.refs),
        "events": events,
        "personal": personal,
        "trail_url": trail_url(notification),
    }
    return render(request, "deliveries/notification_detail.html", ctx)


def show_people(notifications: list[Notification], personal: bool) -> None:
    """Attach what the page may show of each recipient, and the readable reason."""
    for n in notifications:
        n.shown_recipient = n.recipient if personal else mask_recipient(n.recipient)
        n.shown_error_message = shown_text(n.error_message, personal=personal)
        n.reason = reason_by_key(n.reason_key)
        n.purpose_words = words(n.purpose)
        n.url = reverse("notification_detail", args=[n.pk])


def payload_text(event: DeliveryEvent) -> str:
    """The source's own record behind an event, pretty-printed when it is JSON; its start only
    when it is long."""
    if event.payload is not None:
        # Compact first (C-fast at any size): pretty-printing a megabyte of small items in
        # Python takes a tenth of a second, per event.
        text = json.dumps(event.payload, ensure_ascii=False)
        if len(text) <= PAYLOAD_SHOWN_CHARS:
            text = json.dumps(event.payload, indent=2, ensure_ascii=False)
    elif event.raw_event is not None:
        text = pretty_body(bytes(event.raw_event.body))[0]
    else:
        return ""
    return shown_text(text, personal=True, limit=PAYLOAD_SHOWN_CHARS)
