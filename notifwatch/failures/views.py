"""Pages about exceptions: the review queue, one exception's story, the decisions taken on them."""

from datetime import datetime, timedelta

from django import forms
from django.apps import apps
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from django_htmx.http import push_url

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required, sees_personal_data
from notifwatch.accounts.masking import mask_recipient, mask_text, shown_text
from notifwatch.accounts.models import Role, Team
from notifwatch.audit.downloads import EXPORT_ROLES, download
from notifwatch.audit.filters import trail_url
from notifwatch.deliveries.charts import BarChart, Bucket, stacked_bars
from notifwatch.deliveries.counts import PeriodStart
from notifwatch.deliveries.models import Notification
from notifwatch.deliveries.wording import words
from notifwatch.failures import bulk
from notifwatch.failures.actions import add_note, assign, set_status, snooze
from notifwatch.failures.explain import explain, raw_said
from notifwatch.failures.filters import (
    FIX_OWNER_CHOICES,
    QueueFilter,
    filter_querystring,
    make_cursor,
    page_after,
    parse_cursor,
)
from notifwatch.failures.forms import (
    AssignForm,
    BulkForm,
    NoteForm,
    SnoozeForm,
    StatusForm,
    people,
)
from notifwatch.failures.models import FailureGroup, Occurrence, Status
from notifwatch.failures.tasks import apply_bulk_in_background
from notifwatch.failures.wording import (
    change_words,
    filter_words,
    history_rows,
    outcome_words,
    owner_words,
    person,
    plural,
    snooze_words,
    trend_words,
    where_words,
)

CHANGE_ROLES = (Role.ADMIN, Role.REVIEWER)
PAGE_SIZE = 50
MATCH_CAP = 1000
SAMPLE_OCCURRENCES = 20
ACTION_FORMS = {"assign": AssignForm, "status": StatusForm, "snooze": SnoozeForm, "note": NoteForm}


@role_required(*READ_ROLES)
def exception_list(request: HttpRequest) -> HttpResponse:
    """The review queue: open exceptions by impact, filtered in the URL, paged by keyset."""
    template, summary = "failures/exception_list.html", None
    if request.htmx and not request.htmx.history_restore_request:
        template += "#queue"
    else:
        summary = queue_summary()
    ctx = queue_context(request, request.GET, summary=summary)
    response = render(request, template, ctx)
    if summary is None:
        push_url(response, ctx["here_url"])
    # The same URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


@role_required(*READ_ROLES)
def exception_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = get_object_or_404(FailureGroup, pk=pk)
    return render(request, "failures/exception_detail.html", detail_context(request, group))


@role_required(*EXPORT_ROLES)
def exception_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Every exception the queue's filter matches (all pages, open by default), streamed."""
    filterset = QueueFilter(request.GET, queryset=FailureGroup.objects.all(), request=request)
    if not filterset.is_valid():
        return HttpResponseBadRequest("These filters do not work: filter the queue again.")
    filters = QueryDict(filterset.querystring()).dict()
    return download(request, "exceptions", fmt, filterset.qs, filters=filters, name="exceptions")


@role_required(*EXPORT_ROLES)
def exception_notifications_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """The notifications counted in this exception, streamed; recorded in its own trail."""
    group = get_object_or_404(FailureGroup, pk=pk)
    notifications = Notification.objects.filter(pk__in=occurrence_notifications(group))
    return download(
        request,
        "notifications",
        fmt,
        notifications,
        filters={"exception": group.pk},
        name=f"exception-{group.pk}-notifications",
        target=group,
    )


def occurrence_notifications(group: FailureGroup):
    return Occurrence.objects.filter(group=group, notification__isnull=False).values(
        "notification_id"
    )


@role_required(*CHANGE_ROLES)
@require_POST
def exception_action(request: HttpRequest, pk: int) -> HttpResponse:
    group = get_object_or_404(FailureGroup, pk=pk)
    action = request.POST.get("action", "")
    if action not in ACTION_FORMS:
        return HttpResponseBadRequest("Unknown action.")
    if group.merged_into_id:
        notice = f"This exception was merged into #{group.merged_into_id}: change that one instead."
        return respond(request, group, notice, level="error")
    form = action_form(action, group, request.POST)
    if not form.is_valid():
        if from_queue(request):
            return respond(request, group, error_words(form), level="error")
        return render_detail(request, group, **{f"{action}_form": form, "open_form": action})
    notice = apply_action(action, group, form, request.user)
    return respond(request, group, notice)


@role_required(*CHANGE_ROLES)
@require_POST
def exception_bulk(request: HttpRequest) -> HttpResponse:
    """One change for many exceptions: confirm the exact set first, then apply it to all."""
    form = BulkForm(request.POST, auto_id="bulk_%s")
    if not form.is_valid():
        return render_bulk(request, form)
    data = form.cleaned_data
    filters = filter_querystring(QueryDict(data["filters"]))
    ids = data["ids"] if data["scope"] == "selected" else None
    try:
        if "confirm" not in request.POST:
            return render_bulk(request, form, preview=bulk.preview(filters, ids))
        change = bulk_change(form)
        if (data["expected"] or 0) > BACKGROUND_OVER:
            return in_background(request, form, filters, ids, change)
        outcome = bulk.apply_bulk(
            filters,
            change,
            actor=request.user,
            expected=data["expected"],
            digest=data["digest"],
            ids=ids,
        )
    except bulk.InvalidFilter:
        problem = (
            "These filters no longer work (a team, person or source may have been removed): "
            "nothing was changed. Go back to the queue and filter again."
        )
        return render_bulk(request, form, problem=problem)
    except bulk.SetChanged as changed:
        return render_bulk(request, form, preview=changed.preview, changed_from=changed.expected)
    notice = outcome_words(change, outcome)
    if not request.htmx:
        messages.success(request, notice)
        return redirect(queue_url(filters))
    ctx = queue_context(request, QueryDict(filters)) | {"notice": notice}
    return push_url(render(request, "failures/exception_list.html#queue", ctx), ctx["here_url"])


# Above this many, a bulk change runs in the worker: at a few milliseconds per exception (each
# with its history and audit entry), 9,000 would outlast gunicorn's 30-second timeout.
BACKGROUND_OVER = 2000


def in_background(
    request: HttpRequest, form: BulkForm, filters: str, ids: list[int] | None, change
) -> HttpResponse:
    """Check the set is the one confirmed, then hand the change to the worker."""
    data = form.cleaned_data
    bulk.confirmed_ids(filters, ids, expected=data["expected"], digest=data["digest"])
    apply_bulk_in_background.enqueue(
        filters,
        change.as_record(),
        change.comment,
        request.user.pk,
        data["expected"],
        data["digest"],
        ids,
    )
    notice = (
        f"{plural(data['expected'], 'exception')} are being changed in the background (about a "
        "minute for 10,000). The audit trail records the bulk change when it is done."
    )
    if not request.htmx:
        messages.success(request, notice)
        return redirect(queue_url(filters))
    ctx = queue_context(request, QueryDict(filters)) | {"notice": notice}
    return push_url(render(request, "failures/exception_list.html#queue", ctx), ctx["here_url"])


def from_queue(request: HttpRequest) -> bool:
    return request.POST.get("from") == "queue"


def respond(
    request: HttpRequest, group: FailureGroup, notice: str, level: str = "success"
) -> HttpResponse:
    """The owner panel (with the history riding along) for htmx; otherwise back to the page.

    From the queue: its row for htmx; otherwise back to the queue as the person left it.
    """
    if request.htmx:
        if from_queue(request):
            return render_row(request, group, notice=notice, notice_level=level)
        return render_detail(request, group, notice=notice, notice_level=level)
    add = messages.error if level == "error" else messages.success
    add(request, notice if not from_queue(request) else f"#{group.pk}: {notice}")
    if from_queue(request):
        return redirect(queue_url(request.POST.get("back", "")))
    return redirect("exception_detail", pk=group.pk)


def render_detail(request: HttpRequest, group: FailureGroup, **extra) -> HttpResponse:
    template = "failures/exception_detail.html"
    if request.htmx:
        template += "#owner"
        extra["oob"] = True
    return render(request, template, detail_context(request, group, **extra))


def action_form(action: str, group: FailureGroup, data=None) -> forms.Form:
    # Field ids get the action as prefix (four forms share the page); field names stay plain.
    if action == "snooze":
        return SnoozeForm(data, group=group, auto_id=f"{action}_%s")
    return ACTION_FORMS[action](data, auto_id=f"{action}_%s")


def apply_action(action: str, group: FailureGroup, form: forms.Form, actor) -> str:
    """Run the action function behind a valid form; return what to tell the user."""
    data = form.cleaned_data
    if action == "assign":
        group = assign(group, team=data["team"], assignee=data["assignee"], actor=actor)
        return f"Owner: {owner_words(group)}."
    if action == "status":
        set_status(group, data["status"], actor=actor, comment=data["comment"])
        return {
            Status.RESOLVED: "Marked resolved. New occurrences will reopen it as regressed.",
            Status.ACCEPTED: "Accepted as expected: it leaves the open list.",
        }.get(data["status"], "Reopened as new.")
    if action == "snooze":
        wake_at = data["wake_at_occurrences"]
        snooze(
            group,
            form.until_datetime(),
            wake_at_occurrences=wake_at,
            actor=actor,
            comment=data["comment"],
        )
        return "Snoozed " + snooze_words(form.until_datetime(), wake_at) + "."
    add_note(group, data["text"], actor=actor)
    return "Note added."


# --- The review queue ---------------------------------------------------------------------


def queue_url(querystring: str = "") -> str:
    """The queue with these parameters; only ever our own path, whatever was posted."""
    query = QueryDict(querystring).urlencode()
    return reverse("exception_list") + (f"?{query}" if query else "")


def queue_context(request: HttpRequest, params: QueryDict, summary: dict | None = None) -> dict:
    """One page of the queue for these parameters: filters, rows, paging, and the controls."""
    filterset = QueueFilter(params, queryset=FailureGroup.objects.all(), request=request)
    groups = filterset.qs  # an invalid filter shows its error and is left out
    cursor, position = parse_cursor(params.get("after", "")) or (None, 0)
    rows = list(
        page_after(groups, cursor)
        .defer("detail")
        # Fetched after the LIMIT, not joined into it: with joins the planner misjudges the
        # row comparison and sorts every match first (105 ms against 0.6 at 50k exceptions).
        .prefetch_related("source", "team", "assignee")[: PAGE_SIZE + 1]
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    decorate_rows(request, rows)
    filters = filterset.querystring()
    # What is shown, without the empty fields a submitted form carries: for the address bar,
    # and for the row forms to come back to.
    here = urlencode_with(filters, after=params["after"]) if cursor is not None else filters
    filtered = not filterset.is_default()
    role = membership_of(request.user).role
    can_change = role in CHANGE_ROLES
    ctx = {
        "filterset": filterset,
        "form": filterset.form,
        "groups": rows,
        "page_size": PAGE_SIZE,
        "first_row": position + 1,
        "last_row": position + len(rows),
        "paged": cursor is not None,
        "summary": summary,
        "matching": None,
        "matching_capped": False,
        "filtered": filtered,
        "filters_valid": filterset.is_valid(),
        "filter_query": filters,
        "here_url": queue_url(here),
        "first_url": queue_url(filters),
        "next_url": "",
        "back": here,
        "can_change": can_change,
        "may_export": role in EXPORT_ROLES,
        "last_review": None if rows or filtered else last_review(),
    }
    if cursor is None:
        # One page holds them all: its rows are the count.
        counted = count_matches(filterset, groups, summary) if more else (len(rows), False)
        ctx["matching"], ctx["matching_capped"] = counted
    if more:
        next_cursor = make_cursor(rows[-1], position + len(rows))
        ctx["next_url"] = queue_url(urlencode_with(filters, after=next_cursor))
    if can_change and rows:
        ctx |= row_controls(request, ctx["back"]) | {"bulk_form": BulkForm(auto_id="bulk_%s")}
    return ctx


def count_matches(filterset: QueueFilter, groups, summary: dict | None) -> tuple[int, bool]:
    """How many match, exactly up to MATCH_CAP: (count, whether there are more).

    Only the first page asks, and it never counts past the cap: an exact count of every match
    on each view costs a full scan at scale. The bulk confirmation counts exactly, once.
    """
    if summary is not None and filterset.is_default():
        return summary["open"], False
    found = groups.order_by()[: MATCH_CAP + 1].count()
    return min(found, MATCH_CAP), found > MATCH_CAP


def urlencode_with(querystring: str, **extra: str) -> str:
    params = QueryDict(querystring, mutable=True)
    for name, value in extra.items():
        params[name] = value
    return params.urlencode()


def queue_summary() -> dict[str, int]:
    """The counts above the queue, in one pass over the open exceptions."""
    return FailureGroup.objects.open_for_review().aggregate(
        open=Count("id"),
        new=Count("id", filter=Q(status=Status.NEW)),
        regressed=Count("id", filter=Q(status=Status.REGRESSED)),
        unowned=Count("id", filter=Q(team__isnull=True, assignee__isnull=True)),
    )


def decorate_rows(request: HttpRequest, rows: list[FailureGroup]) -> None:
    """Words for one page of rows, and each one's occurrences this week against last week."""
    personal = sees_personal_data(request.user)
    for group in rows:
        group.title = group.title if personal else mask_text(group.title)
        group.where_words = where_words(group)
        group.category_words = words(group.reason_category)
        group.fix_words = dict(FIX_OWNER_CHOICES).get(group.fix_owner, "")
        # Kept on the exception (refresh_impact, refresh_growth): counting them here cost 20 ms
        # per page once a 100k-occurrence exception was on it.
        group.this_week, group.last_week = group.recent_occurrences, group.week_before_occurrences
        group.trend, group.trend_words = trend_words(group.this_week, group.last_week)
        # Ready-made strings: {% url %} and number formatting per form would be most of a
        # 50-row page's render time.
        group.key, group.row_id = str(group.pk), f"exception-{group.pk}"
        group.url = reverse("exception_detail", args=[group.pk])
        group.action_url = reverse("exception_action", args=[group.pk])
        group.assignee_words = person(group.assignee) if group.assignee_id else ""


def row_controls(request: HttpRequest, back: str) -> dict:
    """What every row's small forms share, rendered once per page rather than once per form:
    the team and person options, and the hidden fields that bring a person back to this page."""
    people_rows = [(user.pk, person(user)) for user in people()]
    return {
        "team_options": format_html_join(
            "", '<option value="{}">{}</option>', Team.objects.values_list("pk", "name")
        ),
        "person_options": format_html_join("", '<option value="{}">{}</option>', people_rows),
        "snooze_min": (timezone.localdate() + timedelta(days=1)).isoformat(),
        "row_hidden": format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="from" value="queue">'
            '<input type="hidden" name="back" value="{}">',
            get_token(request),
            back,
        ),
    }


def render_row(request: HttpRequest, group: FailureGroup, **extra) -> HttpResponse:
    """One queue row again, after an inline change (or with why it was refused)."""
    group = FailureGroup.objects.select_related("source", "team", "assignee").get(pk=group.pk)
    decorate_rows(request, [group])
    ctx = {"g": group, "can_change": True} | row_controls(request, request.POST.get("back", ""))
    return render(request, "failures/_queue_row.html", ctx | extra)


def error_words(form: forms.Form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def last_review():
    """The last completed weekly review, if reviews exist yet (for the empty queue)."""
    try:
        review_model = apps.get_model("failures", "Review")
    except LookupError:
        return None
    return review_model.objects.filter(completed_at__isnull=False).order_by("-completed_at").first()


# --- Bulk changes -------------------------------------------------------------------------


def bulk_change(form: BulkForm) -> bulk.Change:
    data = form.cleaned_data
    verb = data["verb"]
    return bulk.Change(
        verb=verb,
        team=data["team"] if verb == "assign" else None,
        assignee=data["assignee"] if verb == "assign" else None,
        until=form.until_datetime() if verb == "snooze" else None,
        comment=data["comment"],
    )


def render_bulk(request: HttpRequest, form: BulkForm, **extra) -> HttpResponse:
    """The confirmation (exact count, sample, what will happen), or the form with its errors."""
    data = getattr(form, "cleaned_data", {})  # what validated, even when something did not
    filters = filter_querystring(QueryDict(form.data.get("filters", "")))
    ctx = {
        "form": form,
        "filters": filters,
        "filter_words": filter_words(filters),
        "back_url": queue_url(filters),
        "scope": data.get("scope") or form.data.get("scope", ""),
        "ids": data.get("ids") or [],
        "sample_size": bulk.SAMPLE_SIZE,
        "preview": None,
        "changed_from": None,
        **extra,
    }
    preview = ctx["preview"]
    if preview is not None:
        ctx["change_words"] = change_words(bulk_change(form))
        ctx["carry"] = carried_fields(form) + [
            ("expected", preview.count),
            ("digest", preview.digest),
        ]
        if not sees_personal_data(request.user):
            for group in preview.sample:
                group.title = mask_text(group.title)
    template = "failures/exception_bulk.html"
    if request.htmx:
        template += "#confirm"
    return render(request, template, ctx)


def carried_fields(form: BulkForm) -> list[tuple[str, object]]:
    """What the confirmation posts back, as hidden fields: the same change and the same set."""
    data = form.cleaned_data
    carry: list[tuple[str, object]] = [
        ("verb", data["verb"]),
        ("scope", data["scope"]),
        ("filters", filter_querystring(QueryDict(data["filters"]))),
    ]
    if data["verb"] == "assign":
        carry += [("team", data["team"].pk if data["team"] else "")]
        carry += [("assignee", data["assignee"].pk if data["assignee"] else "")]
    if data["verb"] == "snooze":
        carry.append(("until", data["until"].isoformat()))
    if data["scope"] == "selected":
        carry += [("ids", pk) for pk in data["ids"]]
    return carry


# --- One exception ------------------------------------------------------------------------


def detail_context(request: HttpRequest, group: FailureGroup, **extra) -> dict:
    group = FailureGroup.objects.select_related("source", "team", "assignee", "merged_into").get(
        pk=group.pk
    )
    personal = sees_personal_data(request.user)
    if not personal:
        # Titles are written by detection rules and may quote an address or number.
        group.title = mask_text(group.title)
        if group.merged_into:
            group.merged_into.title = mask_text(group.merged_into.title)
    role = membership_of(request.user).role
    can_change = role in CHANGE_ROLES
    newest = samples(group, personal)
    ctx = {
        "group": group,
        "personal": personal,
        "can_change": can_change,
        # An exception counts notifications, or raw events or silent hours, whatever its age:
        # its newest occurrences tell (an EXISTS over all of them scanned at scale).
        "may_export": role in EXPORT_ROLES and any(o.notification_id for o in newest),
        "trail_url": trail_url(group),
        "explanation": explain(group, personal),
        "raw_said": raw_said(group, personal),
        "week": weekly_counts(group),
        "chart": occurrence_chart(group),
        "samples": newest,
        "history": history_rows(group, personal),
        "snooze_words": snooze_words(group.snoozed_until, group.snooze_wake_occurrences),
        "source_words": where_words(group),
    }
    if can_change and not group.merged_into_id:
        for action in ACTION_FORMS:
            ctx[f"{action}_form"] = action_form(action, group)
    return ctx | extra


CHART_DAYS = 14
CHART_STEP_HOURS = 6


def occurrence_chart(group: FailureGroup, now: datetime | None = None) -> BarChart:
    """Occurrences per 6 hours over the last 14 local days: did it start, stop, or keep on?"""
    now = now or timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=CHART_DAYS - 1)
    step = timedelta(hours=CHART_STEP_HOURS)
    counted = dict(
        Occurrence.objects.filter(group=group, occurred_at__gte=start, occurred_at__lte=now)
        .annotate(bucket=PeriodStart("occurred_at", start, CHART_STEP_HOURS * 60))
        .values("bucket")
        .annotate(n=Count("id"))
        .values_list("bucket", "n")
        .order_by()
    )
    buckets = []
    moment = start
    while moment <= now:
        buckets.append(Bucket(moment, moment + step, {"n": counted.get(moment, 0)}))
        moment += step
    return stacked_bars(
        "chart-occurrences",
        f"Occurrences, per {CHART_STEP_HOURS} hours, last {CHART_DAYS} days",
        buckets,
        [("n", "Occurrences", "c-bad")],
        unit="occurrences",
    )


def weekly_counts(group: FailureGroup) -> dict[str, int]:
    return {"this_week": group.recent_occurrences, "last_week": group.week_before_occurrences}


def samples(group: FailureGroup, personal: bool) -> list[Occurrence]:
    """The newest occurrences, each with a link to what it is about."""
    rows = list(
        Occurrence.objects.filter(group=group)
        .select_related("notification", "raw_event")
        .defer("raw_event__body", "raw_event__headers")
        .order_by("-occurred_at", "-id")[:SAMPLE_OCCURRENCES]
    )
    for row in rows:
        n = row.notification
        if n is not None:
            n.shown_recipient = n.recipient if personal else mask_recipient(n.recipient)
            n.purpose_words = words(n.purpose)
            row.url = reverse("notification_detail", args=[n.pk])
        elif row.raw_event is not None:
            row.raw_event.reason = shown_text(row.raw_event.reason, personal=personal)
            row.url = reverse("raw_event_detail", args=[row.raw_event_id])
        else:
            row.url = ""
    return rows
