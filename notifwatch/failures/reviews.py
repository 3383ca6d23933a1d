"""The weekly review: building its agenda, deciding each item, finishing it.

Like the other action functions, each change writes its audit entries in its own transaction;
a decision goes through the exception's action functions (assign, set_status, snooze, add_note),
so the exception's history tells the same story as the review's minutes.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import dateformat, timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.actions import record_audit
from notifwatch.failures.actions import add_note, assign, set_status, snooze
from notifwatch.failures.grouping import canonical
from notifwatch.failures.models import (
    OPEN_STATUSES,
    AgendaReason,
    Decision,
    FailureGroup,
    Kind,
    Review,
    ReviewItem,
    Status,
)

# A review is meant to take this long; the page's clock warns (calmly) past it.
REVIEW_MINUTES = 15
# Before the first review, "new" and "grown" look back this far.
FIRST_REVIEW_LOOKBACK = timedelta(days=7)
# An exception has grown when it gained at least this many occurrences since the last review...
GROWTH_OCCURRENCES = 10
# ...or at least this share of what it had before.
GROWTH_SHARE = 0.25
# Which reason an exception shows when several apply, and the agenda's order: what came back
# after a fix, then blind spots (a silent source hides its own failures), then what is new.
REASON_ORDER = list(AgendaReason.values)
# Decisions that give the exception an owner to work on it (the others close it for now).
OWNER_DECISIONS = (Decision.ASSIGN, Decision.FIX_REQUESTED, Decision.ESCALATE)


class ReviewClosed(Exception):
    """The review is finished: its decisions are part of the minutes and stay as they are."""


@dataclass
class AgendaEntry:
    group: FailureGroup
    reason: str
    detail: str


def week_start(moment: datetime) -> date:
    """The Monday of `moment`'s week, in the current time zone."""
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday())


def day_words(moment: datetime | date) -> str:
    if isinstance(moment, datetime):
        moment = timezone.localtime(moment)
    return dateformat.format(moment, "D M j")


def last_completed_review() -> Review | None:
    return Review.objects.filter(completed_at__isnull=False).order_by("-completed_at").first()


def unfinished_review() -> Review | None:
    return Review.objects.filter(completed_at__isnull=True).order_by("started_at").first()


def build_agenda(now: datetime, previous: Review | None) -> list[AgendaEntry]:
    """What needs a decision since `previous`: each exception once, most pressing first."""
    since = previous.started_at if previous else now - FIRST_REVIEW_LOOKBACK
    since_words = (
        f"since the last review ({day_words(previous.started_at)})"
        if previous
        else "in the last 7 days"
    )
    open_groups = FailureGroup.objects.open_for_review().select_related("source", "team")
    found: dict[int, AgendaEntry] = {}

    def offer(group: FailureGroup, reason: str, detail: str) -> None:
        current = found.get(group.pk)
        if current is None or REASON_ORDER.index(reason) < REASON_ORDER.index(current.reason):
            found[group.pk] = AgendaEntry(group, reason, detail)

    for group in open_groups.filter(status=Status.REGRESSED):
        offer(group, AgendaReason.REGRESSED, "Came back after it was marked resolved.")
    # A silence with silent hours since the last review: the source is still quiet (a blind spot).
    for group in open_groups.filter(kind=Kind.SILENCE, last_seen__gte=since):
        source = group.source or "A source"
        offer(
            group,
            AgendaReason.SILENT_SOURCE,
            f"{source} has been quiet {since_words}: its own failures would go unseen.",
        )
    for group in open_groups.filter(created_at__gte=since):
        if is_routed(group):
            offer(group, AgendaReason.NEW, f"New {since_words}, already routed to {group.team}.")
        else:
            offer(group, AgendaReason.NEW, f"New {since_words}.")
    for group, gained in grown_since(open_groups, since):
        before = group.occurrences - gained
        share = f" (+{round(100 * gained / before)}%)" if before else ""
        offer(
            group,
            AgendaReason.GROWN,
            f"Grew from {before} to {group.occurrences} occurrences{share} {since_words}.",
        )
    if previous:
        for group in carried_over(previous):
            offer(
                group,
                AgendaReason.CARRIED_OVER,
                f"Not decided in the review of {day_words(previous.started_at)}: carried over.",
            )
    for group in open_groups.filter(team__isnull=True, assignee__isnull=True):
        offer(group, AgendaReason.UNOWNED, "Still has no owner.")

    # New exceptions a team already has go last: one step keeps them all (confirm_routing),
    # so the walk starts with what needs a person.
    return sorted(
        found.values(),
        key=lambda entry: (
            entry.reason == AgendaReason.NEW and is_routed(entry.group),
            REASON_ORDER.index(entry.reason),
            -entry.group.customers_not_reached,
            -entry.group.occurrences,
            entry.group.pk,
        ),
    )


def is_routed(group: FailureGroup) -> bool:
    """It already has a team to work on it (an owner rule's, or someone's): routed_new_items."""
    return group.status == Status.ASSIGNED and group.team_id is not None


def agenda_words(item: ReviewItem) -> str:
    """The agenda badge: why the item is on the agenda, in words true for it.

    A new exception a team already has is not new like an unowned one: "New · routed to
    Billing" against "New · no owner". Once decided, the decision says the rest.
    """
    label = AgendaReason(item.reason_on_agenda).label
    if item.reason_on_agenda != AgendaReason.NEW or item.decision:
        return label
    group = item.group
    if group.team_id:
        return f"{label} · routed to {group.team}"
    if group.assignee_id:
        assignee = group.assignee
        return f"{label} · assigned to {assignee.get_full_name() or assignee.get_username()}"
    return f"{label} · no owner"


def grown_since(open_groups, since: datetime) -> list[tuple[FailureGroup, int]]:
    """Older exceptions that gained enough occurrences since `since`, with how many."""
    # Only exceptions seen since then can have grown: keeps the count off the quiet majority.
    candidates = (
        open_groups.filter(created_at__lt=since, last_seen__gte=since)
        .annotate(
            gained=Count("occurrence_rows", filter=Q(occurrence_rows__occurred_at__gte=since))
        )
        .filter(gained__gt=0)
    )
    grown = []
    for group in candidates:
        before = group.occurrences - group.gained
        if group.gained >= GROWTH_OCCURRENCES or group.gained >= GROWTH_SHARE * before:
            grown.append((group, group.gained))
    return grown


def carried_over(previous: Review) -> list[FailureGroup]:
    """The previous review's undecided exceptions that still need a decision (merges followed)."""
    groups = []
    items = previous.items.filter(decision="").select_related("group__merged_into", "group__source")
    for item in items:
        group = canonical(item.group)
        if group.status in OPEN_STATUSES and not group.merged_into_id:
            groups.append(group)
    return groups


def start_review(actor, now: datetime | None = None) -> tuple[Review, bool]:
    """This week's review with its agenda; an unfinished review is resumed instead."""
    now = now or timezone.now()
    existing = unfinished_review()
    if existing:
        return existing, False
    week = week_start(now)
    previous = last_completed_review()
    try:
        with transaction.atomic():
            review = Review.objects.create(week_start=week, started_by=actor, started_at=now)
            agenda = build_agenda(now, previous)
            ReviewItem.objects.bulk_create(
                ReviewItem(
                    review=review,
                    group=entry.group,
                    position=position,
                    reason_on_agenda=entry.reason,
                    reason_detail=entry.detail[:300],
                )
                for position, entry in enumerate(agenda, start=1)
            )
            reasons = {}
            for entry in agenda:
                reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
            record_audit(
                actor=actor,
                action="review.started",
                target=review,
                new={
                    "week_start": week.isoformat(),
                    "items": len(agenda),
                    "reasons": reasons,
                    "previous_review": previous.pk if previous else None,
                },
            )
    except IntegrityError:
        # Someone else started this week's review a moment ago: theirs is the one.
        return Review.objects.get(week_start=week, completed_at__isnull=True), False
    return review, True


def decide(
    item: ReviewItem,
    decision: str,
    *,
    actor,
    team: Team | None = None,
    assignee=None,
    note: str = "",
    snooze_until: date | None = None,
) -> ReviewItem:
    """Apply one decision to an agenda item's exception and record it on the item."""
    if decision not in Decision.values:
        raise ValueError(f"unknown decision {decision!r}")
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        review = Review.objects.get(pk=item.review_id)
        if review.finished:
            raise ReviewClosed(str(review))
        group = FailureGroup.objects.get(pk=item.group_id)
        during = f"in the weekly review of {day_words(review.started_at)}"
        because = f": {note}" if note else "."
        if decision == Decision.ASSIGN:
            assign(group, team=team, assignee=assignee, actor=actor)
            if note:
                add_note(group, note, actor=actor)
        elif decision == Decision.ACCEPT:
            set_status(
                group,
                Status.ACCEPTED,
                actor=actor,
                comment=f"Accepted as expected {during}{because}",
            )
        elif decision == Decision.SNOOZE:
            until = timezone.make_aware(datetime.combine(snooze_until, time.min))
            snooze(group, until, actor=actor, comment=f"Snoozed {during}{because}")
        elif decision == Decision.FIX_REQUESTED:
            if team or assignee:
                group = assign(group, team=team, assignee=assignee, actor=actor)
            if group.status != Status.ASSIGNED:
                set_status(group, Status.ASSIGNED, actor=actor, comment=f"Fix requested {during}.")
            add_note(group, f"Fix requested {during}{because}", actor=actor)
        elif decision == Decision.ESCALATE:
            # The status stays: escalating changes who looks at it, not what it is.
            assign(group, team=team, assignee=assignee, actor=actor)
            add_note(group, f"Escalated {during}{because}", actor=actor)
        group.refresh_from_db()
        if decision in OWNER_DECISIONS and group.status not in OPEN_STATUSES:
            # Closed since the agenda was built (or by an earlier decision on this item, now
            # changed): an owner decision means someone works on it again.
            set_status(group, Status.ASSIGNED, actor=actor, comment=f"Reopened {during}.")
            group.refresh_from_db()
        old = {"decision": item.decision} if item.decision else None
        item.decision = decision
        item.decided_by = actor
        item.decided_at = timezone.now()
        item.note = note
        item.snooze_until = snooze_until if decision == Decision.SNOOZE else None
        item.team_id = group.team_id
        item.assignee_id = group.assignee_id
        item.save()
        record_audit(
            actor=actor,
            action="review.decided",
            target=review,
            old=old,
            new={
                "item": item.pk,
                "exception": group.pk,
                "decision": decision,
                "team": group.team_id,
                "assignee": group.assignee_id,
                "snooze_until": snooze_until.isoformat() if item.snooze_until else None,
                "status": group.status,
            },
            detail=note,
        )
    return item


def routed_new_items(review: Review):
    """Undecided new exceptions that already have a team (an owner rule's, or someone's)."""
    return review.items.filter(
        decision="",
        reason_on_agenda=AgendaReason.NEW,
        group__status=Status.ASSIGNED,
        group__team__isnull=False,
        group__merged_into__isnull=True,
    )


def confirm_routing(review: Review, *, actor) -> int:
    """One decision for many: keep the team every routed new exception already has.

    A first review can hold a hundred new exceptions that rules already routed; walking them
    one by one would take the whole 15 minutes. Each still gets its own decision (assigned to
    that team, with its history and audit entries); one more entry records the confirmation.
    """
    items = list(routed_new_items(review).select_related("group__team").order_by("position"))
    teams: dict[str, int] = {}
    for item in items:
        group = item.group
        decide(item, Decision.ASSIGN, actor=actor, team=group.team, assignee=group.assignee)
        teams[group.team.name] = teams.get(group.team.name, 0) + 1
    if items:
        record_audit(
            actor=actor,
            action="review.routing_confirmed",
            target=review,
            new={"items": len(items), "teams": teams},
        )
    return len(items)


def finish_review(review: Review, *, actor, note: str = "") -> Review:
    """Stamp who finished it and when; undecided items carry over to the next agenda."""
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        if review.finished:
            return review  # a second click on "Finish" changes nothing
        review.completed_by = actor
        review.completed_at = timezone.now()
        review.minutes_note = note
        review.save(update_fields=["completed_by", "completed_at", "minutes_note"])
        counts = review.items.aggregate(
            items=Count("id"), undecided=Count("id", filter=Q(decision=""))
        )
        record_audit(
            actor=actor,
            action="review.finished",
            target=review,
            new={
                "items": counts["items"],
                "decided": counts["items"] - counts["undecided"],
                "carried_over": counts["undecided"],
            },
            detail=note,
        )
    return review


def next_undecided(
    review: Review, after: ReviewItem | None = None, *, routed_too: bool = False
) -> ReviewItem | None:
    """The next item still waiting for a decision, wrapping round to the start of the agenda.

    The routed new items stay out of the walk until the reviewer keeps their teams in one step
    or chooses to go through them one by one (`routed_too`): else a first review's hundred
    routed items would bury the few that need a person.
    """
    undecided = review.items.filter(decision="").order_by("position")
    if not routed_too:
        undecided = undecided.exclude(pk__in=routed_new_items(review).values("pk"))
    if after is not None:
        later = undecided.filter(position__gt=after.position).first()
        if later:
            return later
    return undecided.first()
