"""Pages about exceptions: the open list, one exception's story, and the decisions taken on it."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.views.decorators.http import require_POST

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required, sees_personal_data
from notifwatch.accounts.masking import mask_recipient, mask_text
from notifwatch.accounts.models import Role, Team
from notifwatch.deliveries.models import Channel
from notifwatch.deliveries.views import FIX_OWNER_WORDS, words
from notifwatch.failures.actions import add_note, assign, set_status, snooze
from notifwatch.failures.detection import (
    CAUSE_PHRASES,
    CAUSE_REIMPORT,
    CAUSE_TIMEOUT,
    CAUSE_TWO_WORKERS,
    CAUSE_UNKNOWN,
)
from notifwatch.failures.forms import (
    AssignForm,
    ExceptionFilterForm,
    NoteForm,
    SnoozeForm,
    StatusForm,
)
from notifwatch.failures.models import (
    FailureGroup,
    GroupHistory,
    HistoryKind,
    Kind,
    Occurrence,
    Status,
)
from notifwatch.failures.reasons import reason_by_key

CHANGE_ROLES = (Role.ADMIN, Role.REVIEWER)
PAGE_SIZE = 50
SAMPLE_OCCURRENCES = 20
# Impact first: customers nobody reached, then how often it happened; the id keeps pages stable.
IMPACT_ORDER = ("-customers_not_reached", "-occurrences", "-id")
ACTION_FORMS = {"assign": AssignForm, "status": StatusForm, "snooze": SnoozeForm, "note": NoteForm}


@role_required(*READ_ROLES)
def exception_list(request: HttpRequest) -> HttpResponse:
    form = ExceptionFilterForm(request.GET)
    form.is_valid()  # invalid filters show their error and are left out
    groups = form.apply(FailureGroup.objects.select_related("source", "team", "assignee"))
    cursor = parse_cursor(request.GET.get("after", ""))
    page = list(after(groups, cursor).order_by(*IMPACT_ORDER)[: PAGE_SIZE + 1])
    next_cursor = make_cursor(page[PAGE_SIZE - 1]) if len(page) > PAGE_SIZE else ""
    personal = sees_personal_data(request.user)
    for group in page:
        group.title = group.title if personal else mask_text(group.title)
        group.channel_label = channel_words(group)
        group.purpose_words = words(group.purpose)
    open_groups = FailureGroup.objects.open_for_review()
    by_kind = dict(open_groups.values_list("kind").annotate(n=Count("id")).order_by())
    ctx = {
        "form": form,
        "groups": page[:PAGE_SIZE],
        "matching": groups.count(),
        "next_cursor": next_cursor,
        "paged": cursor is not None,
        "filtered": is_filtered(form),
        "open_total": sum(by_kind.values()),
        "open_by_kind": [(value, label, by_kind.get(value, 0)) for value, label in Kind.choices],
        "unowned": open_groups.filter(team__isnull=True, assignee__isnull=True).count(),
    }
    template = "failures/exception_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, ctx)


@role_required(*READ_ROLES)
def exception_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = get_object_or_404(FailureGroup, pk=pk)
    return render(request, "failures/exception_detail.html", detail_context(request, group))


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
        return render_detail(request, group, **{f"{action}_form": form, "open_form": action})
    notice = apply_action(action, group, form, request.user)
    return respond(request, group, notice)


def respond(
    request: HttpRequest, group: FailureGroup, notice: str, level: str = "success"
) -> HttpResponse:
    """The owner panel (with the history riding along) for htmx; otherwise back to the page."""
    if request.htmx:
        return render_detail(request, group, notice=notice, notice_level=level)
    add = messages.error if level == "error" else messages.success
    add(request, notice)
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


# --- The list -----------------------------------------------------------------------------


def is_filtered(form: ExceptionFilterForm) -> bool:
    """Whether the list shows anything but the default: every open exception."""
    data = form.cleaned_data
    return bool(
        data.get("kind")
        or data.get("team")
        or data.get("unowned")
        or data.get("status") not in ("", "open", None)
    )


def make_cursor(group: FailureGroup) -> str:
    return f"{group.customers_not_reached}.{group.occurrences}.{group.pk}"


def parse_cursor(value: str) -> tuple[int, int, int] | None:
    try:
        not_reached, occurrences, pk = (int(part) for part in value.split("."))
    except ValueError:
        return None
    return not_reached, occurrences, pk


def after(groups: QuerySet, cursor: tuple[int, int, int] | None) -> QuerySet:
    """The rows after the cursor in impact order (keyset paging: no OFFSET to walk past)."""
    if cursor is None:
        return groups
    not_reached, occurrences, pk = cursor
    return groups.filter(
        # The redundant first bound lets the planner use an index on the leading column.
        Q(customers_not_reached__lte=not_reached),
        Q(customers_not_reached__lt=not_reached)
        | Q(customers_not_reached=not_reached, occurrences__lt=occurrences)
        | Q(customers_not_reached=not_reached, occurrences=occurrences, pk__lt=pk),
    )


# --- One exception ------------------------------------------------------------------------


@dataclass
class Explanation:
    """Why this exception exists and what to do about it, in words."""

    sentence: str
    action: str
    fix_owner: str = ""
    permanent: bool | None = None
    # (label, text, link) rows: the facts a reader needs to act on it.
    facts: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class RawSaid:
    """What the provider (or our ingest) said, verbatim, beside the readable reason."""

    label: str
    code: str
    message: str
    url: str


DUPLICATE_ACTIONS = {
    CAUSE_TIMEOUT: "Before retrying after a timeout, check whether the first attempt went "
    "through, or send with the provider's idempotency key so a retry cannot deliver twice.",
    CAUSE_TWO_WORKERS: "Make sure one worker claims each notification (a unique key, or a claim "
    "in the queue) so two cannot send it at the same time.",
    CAUSE_REIMPORT: "Make re-runs reuse the original notification keys, so a job or import run "
    "a second time is recognised and skipped.",
}
IDENTITY_PROBLEMS = {
    "missing_customer_id": (
        "Notifications arrive without a stable customer id, so nobody can find them by customer.",
        "Have the sender include the customer id in what it reports (or map it in the source's "
        "field mapping).",
    ),
    "shared_recipient": (
        "One address is used by several customer ids.",
        "Check the CRM for duplicate or merged customer records: an address belongs to one "
        "person, so one of these customers has the wrong contact details.",
    ),
    "unmatched_callback": (
        "Delivery reports arrive that match no notification the sender reported.",
        "Make sure the sender reports its sends (with the provider message id) to notifwatch, "
        "and that the provider's webhook points at the right source.",
    ),
}
SILENCE_ACTIONS = {
    "provider_stopped_reporting": "The provider's status webhook has probably stopped or been "
    "changed: check it in the provider's dashboard. Sends keep going out meanwhile.",
    "purpose_stopped": "Check the job or trigger that sends this notification. If nothing was "
    "due to be sent, accept this.",
}
KIND_ACTIONS = {
    Kind.DELIVERY_FAILURE: "Open a sample notification below to see what the provider said.",
    Kind.LATE: "Check whether the sender's queue or the provider is stuck, and whether the "
    "provider still reports outcomes to us. If the window is simply too tight, widen it.",
    Kind.DUPLICATE_SEND: "Make the sender idempotent: one key per notification, reused by every "
    "retry and re-run.",
    Kind.MAPPING_BREAK: "A field was probably renamed or removed upstream. Fix the source's field "
    "mapping (or the sender), then reprocess the quarantined events: nothing is lost meanwhile.",
    Kind.SILENCE: "Check whether the sender is running. If nothing was due to be sent, accept "
    "this or give the source business hours.",
    Kind.REJECTED_WEBHOOKS: "Usually a rotated secret: make the secret stored for this source "
    "match the one the sender or provider signs with, so its events are accepted again.",
}
# Detail keys (as detection.py writes them) that the explanation already puts into words or
# that the page shows elsewhere; any others are listed as they are.
EXPLAINED_KEYS = {
    "reason",  # delivery failures: the catalog sentence and action, shown from reason_key
    "action",
    "window_seconds",
    "cause",
    "how",
    "problem",
    "recipient",
    "customer_ids",
    "field",
    "pattern",
    "example",  # the raw text box shows the newest one
    "source",
    "mapping",
    "first_seen",
    "last_reason",
    "hint",
    "mode",
    "last_seen",
    "observed",
    "expected",
    "hours",
    "sent_meanwhile",
}


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
    can_change = membership_of(request.user).role in CHANGE_ROLES
    ctx = {
        "group": group,
        "personal": personal,
        "can_change": can_change,
        "explanation": explain(group, personal),
        "raw_said": raw_said(group, personal),
        "week": weekly_counts(group),
        "samples": samples(group, personal),
        "history": history_rows(group, personal),
        "snooze_words": snooze_words(group.snoozed_until, group.snooze_wake_occurrences),
        "source_words": " · ".join(
            filter(None, [str(group.source or ""), channel_words(group), words(group.purpose)])
        ),
    }
    if can_change and not group.merged_into_id:
        for action in ACTION_FORMS:
            ctx[f"{action}_form"] = action_form(action, group)
    return ctx | extra


def explain(group: FailureGroup, personal: bool) -> Explanation:
    """The readable reason: the catalog's when there is one, else what the kind's facts say."""
    detail = group.detail if isinstance(group.detail, dict) else {}
    show = (lambda text: text) if personal else mask_text
    reason = reason_by_key(group.reason_key)
    source = str(group.source or "this source")
    what = " ".join(filter(None, [words(group.purpose), channel_words(group)])) or "Notifications"
    kind_action = KIND_ACTIONS.get(group.kind, "")
    if reason:
        explanation = Explanation(reason.sentence, reason.action, permanent=reason.permanent)
    elif group.kind == Kind.DELIVERY_FAILURE:
        category = words(group.reason_category).lower() or "an unknown reason"
        sentence = detail.get("reason") or f"{what} notifications failed: {category}."
        explanation = Explanation(sentence, detail.get("action") or kind_action)
    elif group.kind == Kind.LATE:
        window = duration_words(detail.get("window_seconds"))
        within = f"within {window}" if window else "within their timing window"
        explanation = Explanation(
            f"{what} notifications got no final status {within}.", kind_action
        )
    elif group.kind == Kind.DUPLICATE_SEND:
        cause = str(detail.get("cause") or "")
        phrase = CAUSE_PHRASES.get(cause, "") if cause != CAUSE_UNKNOWN else ""
        sentence = "Customers got the same notification more than once"
        explanation = Explanation(
            f"{sentence}: {phrase}." if phrase else f"{sentence}.",
            DUPLICATE_ACTIONS.get(cause, kind_action),
        )
    elif group.kind == Kind.IDENTITY:
        problem = detail.get("problem") or ("shared_recipient" if "customer_ids" in detail else "")
        sentence, action = IDENTITY_PROBLEMS.get(problem, IDENTITY_PROBLEMS["missing_customer_id"])
        explanation = Explanation(sentence, action)
    elif group.kind == Kind.MAPPING_BREAK:
        field_name = str(detail.get("field") or "")
        pattern = str(detail.get("pattern") or "").removeprefix("… ")
        if field_name:
            problem = f"{field_name} {pattern or 'is missing or unreadable'}"
        else:
            problem = pattern or str(detail.get("example") or "")
        explanation = Explanation(
            f"Events from {source} could not be read" + (f": {show(problem)}." if problem else "."),
            kind_action,
        )
    elif group.kind == Kind.SILENCE:
        mode = detail.get("mode", "")
        if mode == "provider_stopped_reporting":
            sentence = f"{source} still sends, but has stopped reporting delivery outcomes."
        elif mode == "purpose_stopped":
            label = words(group.purpose).lower() or "this notification"
            sentence = f"{source} stopped sending {label} while it normally would."
        else:
            sentence = f"{source} stopped reporting while it normally would."
        explanation = Explanation(sentence, SILENCE_ACTIONS.get(mode, kind_action))
    elif group.kind == Kind.REJECTED_WEBHOOKS:
        explanation = Explanation(
            f"Calls to {source}'s endpoint were refused: bad signature or credentials.",
            kind_action,
        )
    else:
        explanation = Explanation(group.title, kind_action)
    explanation.fix_owner = FIX_OWNER_WORDS.get(
        group.fix_owner or (reason.fix_owner if reason else ""), ""
    )
    explanation.facts = kind_facts(group, detail, show)
    return explanation


def kind_facts(group: FailureGroup, detail: dict, show) -> list[tuple[str, str, str]]:
    facts: list[tuple[str, str, str]] = []
    if group.reason_category:
        facts.append(("Category", words(group.reason_category), ""))
    if group.kind == Kind.LATE and detail.get("window_seconds"):
        facts.append(("Timing window", duration_words(detail["window_seconds"]), ""))
    if detail.get("how"):
        how = detail["how"] if isinstance(detail["how"], list) else [detail["how"]]
        facts.append(("Sent under", " and ".join(map(str, how)), ""))
    if detail.get("recipient"):
        # Detection stores it masked already; mask again in case an older row did not.
        facts.append(("Shared address", mask_recipient(str(detail["recipient"])), ""))
    if detail.get("customer_ids"):
        facts.append(("Customer ids", ", ".join(map(str, detail["customer_ids"])), ""))
    if group.kind == Kind.MAPPING_BREAK and detail.get("field"):
        facts.append(("Field", str(detail["field"]), ""))
    if detail.get("last_reason"):
        facts.append(("Last reason", show(str(detail["last_reason"])), ""))
    if group.kind == Kind.SILENCE:
        if detail.get("last_seen"):
            facts.append(("Last heard from", when_words(detail["last_seen"]), ""))
        if detail.get("hours") and detail.get("expected") is not None:
            facts.append(
                (
                    f"Last {detail['hours']} hours",
                    f"{detail.get('observed', 0)} events, about {detail['expected']} expected",
                    "",
                )
            )
        if detail.get("sent_meanwhile"):
            facts.append(
                ("Sent meanwhile", f"{detail['sent_meanwhile']} through this provider", "")
            )
    for key, value in sorted(detail.items()):
        if key not in EXPLAINED_KEYS and isinstance(value, str | int | float) and value != "":
            facts.append((words(key), show(str(value)), ""))
    if group.source and group.kind in (Kind.MAPPING_BREAK, Kind.REJECTED_WEBHOOKS, Kind.SILENCE):
        anchor = "#mapping" if group.kind == Kind.MAPPING_BREAK else ""
        url = reverse("source_detail", args=[group.source.slug]) + anchor
        label = "Fix the mapping" if anchor else "Source"
        facts.append((label, f"{group.source} source page", url))
    return facts


def raw_said(group: FailureGroup, personal: bool) -> RawSaid | None:
    """The newest provider error of its notifications, or the newest ingest reason."""
    occurrence = (
        Occurrence.objects.filter(group=group, notification__isnull=False)
        .exclude(notification__error_code="", notification__error_message="")
        .select_related("notification")
        .order_by("-occurred_at", "-id")
        .first()
    )
    if occurrence:
        n = occurrence.notification
        message = n.error_message if personal else mask_text(n.error_message)
        url = reverse("notification_detail", args=[n.pk])
        return RawSaid(f"{n.provider or 'The provider'} said", n.error_code, message, url)
    occurrence = (
        Occurrence.objects.filter(group=group, raw_event__isnull=False)
        .exclude(raw_event__reason="")
        .select_related("raw_event")
        .defer("raw_event__body")
        .order_by("-occurred_at", "-id")
        .first()
    )
    if occurrence:
        raw = occurrence.raw_event
        message = raw.reason if personal else mask_text(raw.reason)
        url = reverse("raw_event_detail", args=[raw.pk])
        return RawSaid(f"Raw event #{raw.pk}", "", message, url)
    return None


def weekly_counts(group: FailureGroup) -> dict[str, int]:
    now = timezone.now()
    week_ago, two_weeks_ago = now - timedelta(days=7), now - timedelta(days=14)
    return Occurrence.objects.filter(group=group, occurred_at__gte=two_weeks_ago).aggregate(
        this_week=Count("id", filter=Q(occurred_at__gte=week_ago)),
        last_week=Count("id", filter=Q(occurred_at__lt=week_ago)),
    )


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
            row.raw_event.reason = (
                row.raw_event.reason if personal else mask_text(row.raw_event.reason)
            )
            row.url = reverse("raw_event_detail", args=[row.raw_event_id])
        else:
            row.url = ""
    return rows


@dataclass
class HistoryRow:
    at: datetime
    who: str
    system: bool
    what: str
    comment: str
    link: str = ""
    link_text: str = ""


def history_rows(group: FailureGroup, personal: bool) -> list[HistoryRow]:
    """Every turning point, oldest first, with team and person ids put back into names."""
    entries = list(GroupHistory.objects.filter(group=group).select_related("actor"))
    team_ids, user_ids = set(), set()
    for entry in entries:
        for side in (entry.old, entry.new):
            if isinstance(side, dict):
                team_ids.add(side.get("team"))
                user_ids.add(side.get("assignee"))
    teams = dict(Team.objects.filter(pk__in=team_ids - {None}).values_list("pk", "name"))
    users = {u.pk: person(u) for u in get_user_model().objects.filter(pk__in=user_ids - {None})}
    rows = []
    for entry in entries:
        row = HistoryRow(
            at=entry.at,
            who=person(entry.actor) if entry.actor else f"System · {entry.rule or 'notifwatch'}",
            system=entry.actor is None,
            what=history_words(entry, teams, users),
            comment=entry.comment if personal else mask_text(entry.comment),
        )
        merged = (entry.new or {}) if entry.kind == HistoryKind.MERGED else {}
        other = merged.get("merged_into") or merged.get("merged_from")
        if other:
            row.link, row.link_text = reverse("exception_detail", args=[other]), f"#{other}"
        rows.append(row)
    return rows


def history_words(entry: GroupHistory, teams: dict, users: dict) -> str:
    old = entry.old if isinstance(entry.old, dict) else {}
    new = entry.new if isinstance(entry.new, dict) else {}
    if entry.kind == HistoryKind.ASSIGNED:
        changes = []
        if old.get("team") != new.get("team"):
            changes.append(f"team {teams.get(new.get('team'), 'none')}")
        if old.get("assignee") != new.get("assignee"):
            changes.append(f"person {users.get(new.get('assignee'), 'none')}")
        return "Assigned to " + (" and ".join(changes) or "the same owner again")
    if entry.kind in (HistoryKind.STATUS, HistoryKind.WOKE, HistoryKind.REGRESSED):
        before, after_ = status_label(old.get("status")), status_label(new.get("status"))
        return f"{entry.get_kind_display()}: {before} → {after_}"
    if entry.kind == HistoryKind.SNOOZED:
        until = parse_when(new.get("until"))
        return "Snoozed " + snooze_words(until, new.get("wake_at_occurrences"))
    if entry.kind == HistoryKind.MERGED:
        return "Merged into" if new.get("merged_into") else "Merged in"
    if entry.kind == HistoryKind.CREATED:
        return "Created"
    return entry.get_kind_display()


# --- Words --------------------------------------------------------------------------------


def person(user) -> str:
    return user.get_full_name() or user.get_username()


def owner_words(group: FailureGroup) -> str:
    parts = []
    if group.team_id:
        parts.append(f"{group.team} (team)")
    if group.assignee_id:
        parts.append(f"{person(group.assignee)} (person)")
    return " · ".join(parts) or "Unowned"


def status_label(value: str | None) -> str:
    return Status(value).label if value in Status.values else (value or "—")


def channel_words(group: FailureGroup) -> str:
    return Channel(group.channel).label if group.channel in Channel.values else group.channel


def parse_when(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def when_words(value) -> str:
    moment = parse_when(value)
    if moment is None:
        return ""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return dateformat.format(timezone.localtime(moment), "D M j, H:i")


def snooze_words(until: datetime | None, wake_at: int | None) -> str:
    parts = []
    if until:
        until = timezone.make_aware(until) if timezone.is_naive(until) else until
        parts.append("until " + dateformat.format(timezone.localtime(until), "D M j"))
    if wake_at:
        parts.append(f"until it reaches {wake_at} occurrences")
    return ", or ".join(parts)


def duration_words(seconds) -> str:
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def exception_bulk(request):
    """Bulk actions on a selection or the whole filtered set (being written)."""
    from django.http import Http404

    raise Http404
