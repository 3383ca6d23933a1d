"""The guided weekly review: start it, walk the agenda one decision at a time, finish, minutes."""

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required, sees_personal_data
from notifwatch.accounts.masking import mask_text
from notifwatch.accounts.models import Role, Team
from notifwatch.failures.explain import explain, raw_said
from notifwatch.failures.forms import PersonChoiceField, TeamChoiceField, people
from notifwatch.failures.models import Decision, FailureGroup, Review, ReviewItem
from notifwatch.failures.reviews import (
    REVIEW_MINUTES,
    ReviewClosed,
    agenda_words,
    confirm_routing,
    decide,
    finish_review,
    last_completed_review,
    next_undecided,
    routed_new_items,
    start_review,
    week_start,
)
from notifwatch.failures.wording import owner_words, person, where_words

CHANGE_ROLES = (Role.ADMIN, Role.REVIEWER)


@dataclass(frozen=True)
class DecisionChoice:
    value: str
    key: str
    label: str
    button: str
    help: str


# The decisions in the order the page offers them, each with its keyboard shortcut.
DECISIONS = [
    DecisionChoice(
        Decision.ASSIGN, "a", "Assign", "Assign", "Give it an owner: a team, a person, or both."
    ),
    DecisionChoice(
        Decision.ACCEPT,
        "x",
        "Accept as expected",
        "Accept as expected",
        "Nothing to fix (a test sender, an expected opt-out wave): it leaves the open list.",
    ),
    DecisionChoice(
        Decision.SNOOZE,
        "s",
        "Snooze until…",
        "Snooze",
        "Not now: it comes back to the open list on that date.",
    ),
    DecisionChoice(
        Decision.FIX_REQUESTED,
        "f",
        "Fix requested",
        "Request the fix",
        "Ask an owner for a specific fix; it stays assigned to them until it is resolved.",
    ),
    DecisionChoice(
        Decision.ESCALATE,
        "e",
        "Escalate",
        "Escalate",
        "It needs more reach than its owner has: hand it to a team, with a note why.",
    ),
]


class DecisionForm(forms.Form):
    """One decision's fields; the page shows one of these per decision."""

    team = TeamChoiceField(queryset=Team.objects.all(), required=False, empty_label="(keep)")
    assignee = PersonChoiceField(
        queryset=people(), required=False, empty_label="(keep)", label="Person"
    )
    snooze_until = forms.DateField(
        required=False,
        label="Snooze until",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    note = forms.CharField(
        required=False,
        max_length=2000,
        label="Note (optional)",
        # One line: Enter submits, so "x, type why, Enter" decides without the mouse.
        widget=forms.TextInput(attrs={"class": "wide"}),
    )

    FIELDS = {
        Decision.ASSIGN: ("team", "assignee", "note"),
        Decision.ACCEPT: ("note",),
        Decision.SNOOZE: ("snooze_until", "note"),
        Decision.FIX_REQUESTED: ("team", "assignee", "note"),
        Decision.ESCALATE: ("team", "assignee", "note"),
    }

    def __init__(self, *args, decision: str, group: FailureGroup, **kwargs):
        kwargs.setdefault("auto_id", f"{decision}_%s")
        super().__init__(*args, **kwargs)
        self.decision, self.group = decision, group
        for name in list(self.fields):
            if name not in self.FIELDS[decision]:
                del self.fields[name]
        if decision == Decision.ACCEPT:
            self.fields["note"].label = "Why it is expected (optional)"
        elif decision == Decision.FIX_REQUESTED:
            self.fields["note"].required = True
            self.fields["note"].label = "What needs fixing"
            if group.team_id or group.assignee_id:
                self.fields["team"].help_text = f"Keep both to ask {owner_words(group)}."
        elif decision == Decision.ESCALATE:
            self.fields["team"].required = True
            self.fields["team"].empty_label = "Choose a team"
            self.fields["team"].label = "Escalate to team"
            self.fields["note"].required = True
            self.fields["note"].label = "Why it is escalated"

    def clean(self):
        data = super().clean()
        if self.group.merged_into_id:
            raise forms.ValidationError(
                f"This exception was merged into #{self.group.merged_into_id} since the agenda "
                "was built: decide on that one in the exception list."
            )
        if self.errors:
            return data
        owner_given = data.get("team") or data.get("assignee")
        if self.decision == Decision.ASSIGN and not owner_given:
            raise forms.ValidationError("Choose a team, a person, or both.")
        if self.decision == Decision.FIX_REQUESTED and not (
            owner_given or self.group.team_id or self.group.assignee_id
        ):
            raise forms.ValidationError("It has no owner yet: choose who should fix it.")
        return data

    def clean_snooze_until(self):
        until = self.cleaned_data["snooze_until"]
        if until is None:
            raise forms.ValidationError("Pick the date it should come back.")
        if until <= timezone.localdate():
            raise forms.ValidationError("Pick a date after today.")
        return until


# --- Views --------------------------------------------------------------------------------


@role_required(*READ_ROLES)
def review_list(request: HttpRequest) -> HttpResponse:
    reviews = list(
        Review.objects.select_related("started_by", "completed_by").annotate(
            total=Count("items"), undecided=Count("items", filter=Q(items__decision=""))
        )
    )
    for review in reviews:
        review.duration = time_taken_words(review)
        review.decided = review.total - review.undecided
    unfinished = next((r for r in reviews if not r.finished), None)
    last = last_completed_review()
    ctx = {
        "reviews": [r for r in reviews if r.finished],
        "unfinished": unfinished,
        "last": last,
        "done_this_week": bool(last and last.week_start == week_start(timezone.now())),
        "can_change": membership_of(request.user).role in CHANGE_ROLES,
        "minutes": REVIEW_MINUTES,
    }
    return render(request, "failures/review_list.html", ctx)


@role_required(*CHANGE_ROLES)
@require_POST
def review_start(request: HttpRequest) -> HttpResponse:
    review, created = start_review(request.user)
    if created:
        count = review.items.count()
        messages.success(
            request,
            f"This week's review has started: {count} exception{'s' if count != 1 else ''} "
            "on the agenda.",
        )
    else:
        messages.info(
            request,
            f"A review is already under way (started by {person(review.started_by)}): "
            "carrying on where it stopped.",
        )
    return redirect("review_detail", pk=review.pk)


@role_required(*READ_ROLES)
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(Review.objects.select_related("started_by"), pk=pk)
    if review.finished:
        return redirect("review_minutes", pk=review.pk)
    current = None
    wanted = request.GET.get("item", "")
    if wanted.isdigit():
        current = review.items.filter(pk=int(wanted)).first()
    return render_review(request, review, current or next_undecided(review))


@role_required(*CHANGE_ROLES)
@require_POST
def review_decide(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    review = get_object_or_404(Review.objects.select_related("started_by"), pk=pk)
    item = get_object_or_404(ReviewItem.objects.select_related("group"), pk=item_pk, review=review)
    if review.finished:
        return closed(request, review)
    decision = request.POST.get("decision", "")
    if decision not in Decision.values:
        return HttpResponseBadRequest("Unknown decision.")
    form = DecisionForm(request.POST, decision=decision, group=item.group)
    if not form.is_valid():
        return render_review(request, review, item, bound=form)
    # Deciding a routed item means the reviewer chose to go through them one by one: the walk
    # goes on to the next of them.
    walking_routed = routed_new_items(review).filter(pk=item.pk).exists()
    try:
        item = decide(item, decision, actor=request.user, **form.cleaned_data)
    except ReviewClosed:
        return closed(request, review)
    notice = f"Item {item.position}, #{item.group_id}: {decision_words(item)}."
    following = next_undecided(review, after=item, routed_too=walking_routed)
    if request.htmx:
        response = render_review(request, review, following, notice=notice)
        return push_url(response, item_url(review, following))
    messages.success(request, notice)
    return redirect(item_url(review, following))


@role_required(*CHANGE_ROLES)
@require_POST
def review_confirm_routing(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(Review, pk=pk)
    if review.finished:
        return closed(request, review)
    try:
        confirmed = confirm_routing(review, actor=request.user)
    except ReviewClosed:
        return closed(request, review)
    messages.success(
        request,
        f"Kept the team of {confirmed} new exception{'s' if confirmed != 1 else ''}."
        if confirmed
        else "Nothing left to confirm: those exceptions were decided or changed meanwhile.",
    )
    url = item_url(review, next_undecided(review))
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@role_required(*CHANGE_ROLES)
@require_POST
def review_finish(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(Review, pk=pk)
    if not review.finished:
        note = request.POST.get("minutes_note", "").strip()[:5000]
        review = finish_review(review, actor=request.user, note=note)
        messages.success(request, "Review finished. These are its minutes.")
    url = reverse("review_minutes", args=[review.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@role_required(*READ_ROLES)
def review_minutes(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(Review.objects.select_related("started_by", "completed_by"), pk=pk)
    items = agenda(request, review)
    decided = [item for item in items if item.decision]
    tally = [
        (label, n)
        for value, label in Decision.choices
        if (n := sum(1 for item in decided if item.decision == value))
    ]
    ctx = {
        "review": review,
        "decided": decided,
        "undecided": [item for item in items if not item.decision],
        "total": len(items),
        "tally": tally,
        "duration": time_taken_words(review),
        "can_change": membership_of(request.user).role in CHANGE_ROLES,
        "minutes_note": shown(request, review.minutes_note),
    }
    return render(request, "failures/review_minutes.html", ctx)


# --- Rendering ----------------------------------------------------------------------------


def render_review(
    request: HttpRequest,
    review: Review,
    current: ReviewItem | None,
    *,
    bound: DecisionForm | None = None,
    notice: str = "",
) -> HttpResponse:
    """The review page at one item; for htmx, only the item and agenda fragment."""
    template = "failures/review_detail.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#item"
    ctx = review_context(request, review, current, bound=bound)
    # The undecided count in the page's header follows along out of band.
    oob = bool(request.htmx) and ctx["can_change"]
    return render(request, template, ctx | {"notice": notice, "oob": oob})


def review_context(
    request: HttpRequest, review: Review, current: ReviewItem | None, *, bound=None
) -> dict:
    items = agenda(request, review)
    can_change = membership_of(request.user).role in CHANGE_ROLES
    elapsed = int((timezone.now() - review.started_at).total_seconds())
    ctx = {
        "review": review,
        "items": items,
        "total": len(items),
        "decided": sum(1 for item in items if item.decision),
        "can_change": can_change,
        "elapsed": elapsed,
        "clock": clock_words(elapsed),
        "limit": REVIEW_MINUTES * 60,
        "over": elapsed > REVIEW_MINUTES * 60,
        "minutes": REVIEW_MINUTES,
        "shortcuts": DECISIONS,
    }
    ctx["undecided"] = ctx["total"] - ctx["decided"]
    # Routed new items wait, folded, until their teams are kept or someone walks them.
    routed_ids = set(routed_new_items(review).values_list("pk", flat=True))
    ctx["walk_items"] = [item for item in items if item.pk not in routed_ids]
    ctx["routed_items"] = [item for item in items if item.pk in routed_ids]
    ctx["walking_routed"] = bool(current and current.pk in routed_ids)
    ctx["routed"] = routed_summary(ctx["routed_items"], ctx["undecided"])
    index = next((i for i, item in enumerate(items) if current and item.pk == current.pk), None)
    if index is None:
        return ctx
    item = items[index]
    group = FailureGroup.objects.select_related("source", "team", "assignee").get(pk=item.group_id)
    group.title = item.shown_title
    personal = sees_personal_data(request.user)
    ctx |= {
        "item": item,
        "group": group,
        "number": index + 1,
        "previous": items[index - 1] if index > 0 else None,
        "next": items[index + 1] if index + 1 < len(items) else None,
        "explanation": explain(group, personal),
        # The card shows the provider's own words it would otherwise only point to: the
        # exception page's, from its newest occurrences (one query, two without an error).
        "raw_said": raw_said(group, personal),
        "owner": owner_words(group),
        "where": where_words(group),
    }
    if can_change:
        ctx["decisions"] = [
            (
                choice,
                bound
                if bound is not None and bound.decision == choice.value
                else DecisionForm(decision=choice.value, group=group),
            )
            for choice in DECISIONS
        ]
        ctx["open_decision"] = bound.decision if bound is not None else ""
    return ctx


def routed_summary(routed_items: list[ReviewItem], undecided: int) -> dict | None:
    """The new exceptions that one click can keep with their team: how many, per team, and
    what is left to walk after that step."""
    if not routed_items:
        return None
    teams: dict[str, int] = {}
    for item in routed_items:
        teams[item.group.team.name] = teams.get(item.group.team.name, 0) + 1
    count = len(routed_items)
    return {
        "count": count,
        "teams": " · ".join(f"{name} {n}" for name, n in sorted(teams.items())),
        "left": undecided - count,
        "first_url": routed_items[0].url,
    }


def agenda(request: HttpRequest, review: Review) -> list[ReviewItem]:
    """The review's items in order, with what each may show to this user."""
    items = list(
        review.items.select_related(
            "group__team", "group__assignee", "team", "assignee", "decided_by"
        ).order_by("position")
    )
    for item in items:
        item.shown_title = shown(request, item.group.title)
        item.shown_note = shown(request, item.note)
        item.url = item_url(review, item)
        item.decision_words = decision_words(item) if item.decision else ""
        item.agenda_words = agenda_words(item)
        item.owner_words = owner_words(item, unowned="")
    return items


def closed(request: HttpRequest, review: Review) -> HttpResponse:
    """A decision arrived after the review was finished: show the minutes instead."""
    messages.error(request, "This review is finished: its decisions stay as they were recorded.")
    url = reverse("review_minutes", args=[review.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def item_url(review: Review, item: ReviewItem | None) -> str:
    url = reverse("review_detail", args=[review.pk])
    return f"{url}?item={item.pk}" if item else url


def shown(request: HttpRequest, text: str) -> str:
    # Titles and notes may quote an address or a number.
    return text if sees_personal_data(request.user) else mask_text(text)


# --- Words --------------------------------------------------------------------------------


def decision_words(item: ReviewItem) -> str:
    owner = owner_words(item, unowned="its owner")
    if item.decision == Decision.ASSIGN:
        return f"assigned to {owner}"
    if item.decision == Decision.ACCEPT:
        return "accepted as expected"
    if item.decision == Decision.SNOOZE:
        return f"snoozed until {item.snooze_until:%a %b} {item.snooze_until.day}"
    if item.decision == Decision.FIX_REQUESTED:
        return f"fix requested from {owner}"
    if item.decision == Decision.ESCALATE:
        return f"escalated to {owner}"
    return "not decided"


def clock_words(seconds: int) -> str:
    """m:ss under an hour, h:mm:ss under a day, then days (a review resumed later)."""
    seconds = max(seconds, 0)
    if seconds >= 86400:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_taken_words(review: Review) -> str:
    """How long a finished review took, as its minutes say it: '1 h 05 min'."""
    if not review.completed_at:
        return ""
    span = review.completed_at - review.started_at
    if span < timedelta(minutes=1):
        return "under a minute"
    if span < timedelta(hours=1):
        minutes = round(span.total_seconds() / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if span < timedelta(days=1):
        hours, minutes = divmod(round(span.total_seconds() / 60), 60)
        return f"{hours} h {minutes:02d} min"
    days = span.days
    return f"{days} day{'s' if days != 1 else ''} (finished later)"
