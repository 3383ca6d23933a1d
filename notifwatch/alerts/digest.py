"""The weekly digest: what a review owner needs before the weekly review, once a week each.

Each `weekly_digest` subscription gets its digest at its weekday and hour in its owner's time
zone (or any time later that ISO week, when the worker was down at that hour). The occurrence
`week:<ISO year>-W<week>` of the subscriber's local week makes it once per week per
subscription, however many workers or passes ask.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.conf import settings
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import dateformat, timezone

from notifwatch.accounts.models import Membership
from notifwatch.alerts.messages import absolute_url, exception_url, impact_words, plural
from notifwatch.alerts.models import Alert, AlertKind, Subscription
from notifwatch.alerts.recording import Message, alert_key, record_alert
from notifwatch.deliveries.models import Notification
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.failures.wording import owner_words
from notifwatch.ingest.models import Source

WEEK = timedelta(days=7)
TOP = 5
# Unowned and carried-over exceptions listed by name; beyond this, counted.
LISTED = 10


def send_weekly_digests(now: datetime | None = None) -> int:
    """Record the digest of every subscription whose hour has come this week; return how many."""
    now = now or timezone.now()
    recorded = 0
    due = Subscription.objects.filter(kind=AlertKind.WEEKLY_DIGEST, is_active=True)
    for subscription in due.select_related("user", "team"):
        zone = subscriber_zone(subscription)
        local = now.astimezone(zone)
        if (local.weekday(), local.hour) < (subscription.digest_weekday, subscription.digest_hour):
            continue
        occurrence = week_occurrence(local)
        # Cheap skip for the passes after this week's digest; the unique key is what decides.
        if Alert.objects.filter(
            key=alert_key(AlertKind.WEEKLY_DIGEST, occurrence, subscription.pk)
        ).exists():
            continue
        message = weekly_digest(now, zone)
        record_alert(
            AlertKind.WEEKLY_DIGEST,
            occurrence,
            message,
            subscriptions=Subscription.objects.filter(pk=subscription.pk),
        )
        recorded += 1
    return recorded


def week_occurrence(local: datetime) -> str:
    year, week, _ = local.isocalendar()
    return f"week:{year}-W{week:02d}"


def subscriber_zone(subscription: Subscription) -> tzinfo:
    """The user's own time zone (their preferences), else the site's."""
    name = ""
    if subscription.user_id:
        membership = Membership.objects.filter(user_id=subscription.user_id).first()
        name = membership.time_zone if membership else ""
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@dataclass
class SourceWeek:
    name: str
    notifications: int


@dataclass
class DigestFacts:
    """What the digest says, before it is put into words."""

    since: datetime
    until: datetime
    reported: list[SourceWeek]
    silent: list[str]
    went_silent: list[FailureGroup]
    opened: dict[str, tuple[int, int]]  # kind -> (this week, last week)
    top: list[FailureGroup]
    unowned: list[FailureGroup]
    unowned_count: int
    carried_over: list[FailureGroup]
    carried_over_count: int


def digest_facts(now: datetime) -> DigestFacts:
    """The last 7 days against the 7 before them."""
    since, before = now - WEEK, now - 2 * WEEK
    by_source = dict(
        Notification.objects.filter(last_event_at__gte=since, last_event_at__lt=now)
        .values("source_id")
        .annotate(n=Count("id"))
        .values_list("source_id", "n")
        .order_by()
    )
    sources = list(Source.objects.filter(Q(is_active=True) | Q(pk__in=by_source)).order_by("name"))
    reported = [SourceWeek(str(s), by_source[s.pk]) for s in sources if s.pk in by_source]
    silent = [str(s) for s in sources if s.pk not in by_source]
    went_silent = list(
        FailureGroup.objects.open_for_review()
        .filter(kind=Kind.SILENCE, last_seen__gte=since)
        .select_related("source")
        .order_by("first_seen", "id")
    )
    opened_rows = (
        FailureGroup.objects.filter(merged_into__isnull=True, first_seen__gte=before)
        .filter(first_seen__lt=now)
        .values("kind")
        .annotate(
            this_week=Count("id", filter=Q(first_seen__gte=since)),
            last_week=Count("id", filter=Q(first_seen__lt=since)),
        )
        .order_by()
    )
    opened = {
        row["kind"]: (row["this_week"], row["last_week"])
        for row in opened_rows
        if row["this_week"] or row["last_week"]
    }
    open_groups = FailureGroup.objects.open_for_review().select_related("team", "assignee")
    top = list(
        open_groups.filter(customers_not_reached__gt=0).order_by(
            "-customers_not_reached", "-occurrences", "id"
        )[:TOP]
    )
    unowned = open_groups.filter(team__isnull=True, assignee__isnull=True).order_by(
        "-customers_not_reached", "-occurrences", "id"
    )
    carried = open_groups.filter(first_seen__lt=since).order_by(
        "-customers_not_reached", "-occurrences", "id"
    )
    return DigestFacts(
        since=since,
        until=now,
        reported=reported,
        silent=silent,
        went_silent=went_silent,
        opened=opened,
        top=top,
        unowned=list(unowned[:LISTED]),
        unowned_count=unowned.count(),
        carried_over=list(carried[:LISTED]),
        carried_over_count=carried.count(),
    )


def day(moment: datetime, zone: tzinfo) -> str:
    return dateformat.format(moment.astimezone(zone), "D M j")


def compare_words(this_week: int, last_week: int) -> str:
    """'7 (last week 3, up 4)'."""
    if this_week == last_week:
        return f"{this_week} (same as last week)"
    direction = "up" if this_week > last_week else "down"
    return f"{this_week} (last week {last_week}, {direction} {abs(this_week - last_week)})"


def group_line(group: FailureGroup) -> str:
    return f"- #{group.pk} {group.title} — {impact_words(group)} Owner: {owner_words(group)}."


def weekly_digest(now: datetime, zone: tzinfo) -> Message:
    """The digest in words (for email and chat) and as JSON (for webhooks)."""
    facts = digest_facts(now)
    review_url = absolute_url(reverse("review_list"))
    week = f"{day(facts.since, zone)} to {day(facts.until, zone)}"
    lines = [f"Your weekly notification failure review: {week}.", ""]

    lines.append("Sources")
    if facts.reported:
        names = ", ".join(
            f"{s.name} ({plural(s.notifications, 'notification')})" for s in facts.reported
        )
        lines.append(f"Reported this week: {names}.")
    else:
        lines.append("No source reported anything this week.")
    if facts.silent:
        lines.append(f"Reported nothing this week: {', '.join(facts.silent)}.")
    for group in facts.went_silent:
        lines.append(f"Went silent: {group.title} (#{group.pk}, open).")
    if not facts.silent and not facts.went_silent:
        lines.append("None went silent.")
    lines.append("")

    lines.append("New exceptions by kind, this week against last week")
    if facts.opened:
        for kind in Kind:
            if kind.value in facts.opened:
                lines.append(f"- {kind.label}: {compare_words(*facts.opened[kind.value])}")
    else:
        lines.append("None opened this week or last week.")
    lines.append("")

    lines.append(f"Top {TOP} open exceptions by customers not reached")
    lines += [group_line(g) for g in facts.top] or [
        "No open exception leaves a customer unreached."
    ]
    lines.append("")

    lines.append(f"Unowned ({facts.unowned_count})")
    lines += [group_line(g) for g in facts.unowned] or ["Every open exception has an owner."]
    if facts.unowned_count > len(facts.unowned):
        lines.append(f"… and {facts.unowned_count - len(facts.unowned)} more.")
    lines.append("")

    lines.append(f"Carried over from before this week, still open ({facts.carried_over_count})")
    lines += [group_line(g) for g in facts.carried_over] or ["None: every older one is settled."]
    if facts.carried_over_count > len(facts.carried_over):
        lines.append(f"… and {facts.carried_over_count - len(facts.carried_over)} more.")
    lines.append("")
    lines.append(f"Start the review (the Start button on the reviews page): {review_url}")

    open_count = FailureGroup.objects.open_for_review().count()
    subject = (
        f"Weekly failure review, {week}: {plural(open_count, 'open exception')}, "
        f"{facts.unowned_count} unowned"
    )
    return Message(
        subject=subject,
        body="\n".join(lines),
        link=review_url,
        payload=digest_payload(facts, review_url, open_count),
    )


def digest_payload(facts: DigestFacts, review_url: str, open_count: int) -> dict:
    def brief(group: FailureGroup) -> dict:
        return {
            "id": group.pk,
            "kind": group.kind,
            "title": group.title,
            "status": group.status,
            "customers_not_reached": group.customers_not_reached,
            "occurrences": group.occurrences,
            "owner": owner_words(group, unowned=""),
            "url": exception_url(group),
        }

    return {
        "event": "weekly_digest",
        "since": facts.since.isoformat(),
        "until": facts.until.isoformat(),
        "open_exceptions": open_count,
        "sources_reported": [
            {"source": s.name, "notifications": s.notifications} for s in facts.reported
        ],
        "sources_silent": facts.silent,
        "went_silent": [brief(g) for g in facts.went_silent],
        "opened_by_kind": {
            kind: {"this_week": this, "last_week": last}
            for kind, (this, last) in facts.opened.items()
        },
        "top_not_reached": [brief(g) for g in facts.top],
        "unowned": {"count": facts.unowned_count, "first": [brief(g) for g in facts.unowned]},
        "carried_over": {
            "count": facts.carried_over_count,
            "first": [brief(g) for g in facts.carried_over],
        },
        "review_url": review_url,
    }
