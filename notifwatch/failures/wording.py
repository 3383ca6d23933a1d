"""Exceptions in words: owners, statuses, moments, trends, history and bulk changes."""

from dataclasses import dataclass
from datetime import datetime

from django.http import QueryDict
from django.urls import reverse
from django.utils import dateformat, timezone

from notifwatch.accounts.masking import shown_text
from notifwatch.audit.wording import entry_words, names_for
from notifwatch.deliveries.models import Channel
from notifwatch.deliveries.wording import words
from notifwatch.failures import bulk
from notifwatch.failures.filters import QueueFilter
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, ReviewItem, Status
from notifwatch.lib.moments import parse_moment


def person(user) -> str:
    return user.get_full_name() or user.get_username()


def owner_words(owner: FailureGroup | ReviewItem, unowned: str = "Unowned") -> str:
    """The team and person an exception (or a review's decision) names: 'Billing (team) · Ana
    (person)'."""
    parts = []
    if owner.team_id:
        parts.append(f"{owner.team} (team)")
    if owner.assignee_id:
        parts.append(f"{person(owner.assignee)} (person)")
    return " · ".join(parts) or unowned


def where_words(group: FailureGroup) -> str:
    """Where it happens: 'Postmark · Email · Order confirmation'."""
    return " · ".join(
        filter(None, [str(group.source or ""), channel_words(group), words(group.purpose)])
    )


def status_label(value: str | None) -> str:
    return Status(value).label if value in Status.values else (value or "—")


def channel_words(group: FailureGroup) -> str:
    return Channel(group.channel).label if group.channel in Channel.values else group.channel


def when_words(value) -> str:
    moment = parse_moment(value)
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


def trend_words(this_week: int, last_week: int) -> tuple[str, str]:
    """An arrow for the table, and the sentence behind it for its tooltip and screen readers."""
    week = f"{this_week} in the last 7 days, {last_week} in the 7 before"
    if this_week > last_week:
        return "↑", f"{week}: growing" if last_week else f"{week}: new this week"
    if this_week < last_week:
        return "↓", f"{week}: shrinking"
    return ("→", f"{week}: steady") if this_week else ("", f"{week}: quiet")


@dataclass
class HistoryRow:
    at: datetime
    who: str
    system: bool
    action: str  # "Assigned"
    changes: list[str]  # ["Team: CRM admins → Engineering"]
    comment: str
    link: str = ""
    link_text: str = ""
    # An assignment that changed nothing (written before such calls stopped writing): kept in
    # the data, not shown as a turning point.
    no_change: bool = False

    @property
    def what(self) -> str:
        """The whole sentence on one line: "Assigned · Team: CRM admins → Engineering"."""
        return " · ".join([self.action, *self.changes])


def history_rows(group: FailureGroup, personal: bool) -> list[HistoryRow]:
    """Every turning point, oldest first, worded as the audit trail words its entries (team and
    person ids put back into names, looked up once for all)."""
    entries = list(GroupHistory.objects.filter(group=group).select_related("actor"))
    names = names_for(side for entry in entries for side in (entry.old, entry.new))
    rows = []
    for entry in entries:
        words = entry_words(
            f"exception.{entry.kind}", entry.old, entry.new, names=names, personal=personal
        )
        row = HistoryRow(
            at=entry.at,
            who=person(entry.actor) if entry.actor else f"System · {entry.rule or 'notifwatch'}",
            system=entry.actor is None,
            action=words.action,
            changes=words.changes,
            comment=shown_text(entry.comment, personal=personal),
            no_change=entry.kind == HistoryKind.ASSIGNED and words.changes == ["Nothing changed"],
        )
        merged = (entry.new or {}) if entry.kind == HistoryKind.MERGED else {}
        other = merged.get("merged_into") or merged.get("merged_from")
        if other:
            row.link, row.link_text = reverse("exception_detail", args=[other]), f"#{other}"
        rows.append(row)
    return rows


def change_words(change: bulk.Change) -> str:
    if change.verb == "resolve":
        return "Mark resolved"
    if change.verb == "accept":
        return "Accept as expected"
    if change.verb == "snooze":
        return "Snooze " + snooze_words(change.until, None)
    owners = []
    if change.team:
        owners.append(f"team {change.team}")
    if change.assignee:
        owners.append(f"person {person(change.assignee)}")
    return "Assign to " + " and ".join(owners)


def outcome_words(change: bulk.Change, outcome: bulk.Outcome) -> str:
    done = {
        "resolve": "Marked {n} resolved",
        "accept": "Accepted {n} as expected",
        "snooze": "Snoozed {n}",
        "assign": "Assigned {n}",
    }[change.verb].format(n=plural(outcome.changed, "exception"))
    parts = [done + "." if outcome.changed else "Nothing changed."]
    if outcome.unchanged:
        were = "was" if outcome.unchanged == 1 else "were"
        parts.append(f"{outcome.unchanged:,} {were} already like that: left alone.")
    if outcome.gone:
        parts.append(
            f"{plural(outcome.gone, 'exception')} changed meanwhile and no longer matched the "
            "filters: left alone."
        )
    return " ".join(parts)


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def filter_words(querystring: str) -> list[tuple[str, str]]:
    """The filters as (label, value) pairs a person can read back before confirming."""
    filterset = QueueFilter(QueryDict(querystring), queryset=FailureGroup.objects.none())
    if not filterset.is_valid():
        return []
    pairs = []
    for name, value in filterset.form.cleaned_data.items():
        if value in (None, ""):
            continue
        bound = filterset.form[name]
        if hasattr(value, "pk"):
            shown = person(value) if name == "assignee" else str(value)
        else:
            # Iterated, never sized: django-filter's choice iterator over callable choices
            # (the teams) cannot tell its length.
            choices = getattr(bound.field, "choices", None)
            shown = dict(iter(choices)).get(str(value), value) if choices is not None else value
        pairs.append((str(bound.label), str(shown)))
    return pairs
