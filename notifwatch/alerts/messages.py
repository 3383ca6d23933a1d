"""What an alert about an exception says: a subject, a plain-words body, a link and JSON.

Alerts go to the exception's owners, who may see everything about it, so nothing in the body is
masked; the subject is masked all the same, since it is what a lock screen or a chat preview
shows to whoever stands nearby.
"""

from django.conf import settings
from django.urls import reverse

from notifwatch.accounts.masking import mask_text
from notifwatch.accounts.models import Team
from notifwatch.alerts.recording import Message
from notifwatch.failures.explain import explain
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.failures.wording import person, status_label, where_words

# Kinds whose problems are not notifications to customers (a raw event, a silent hour): their
# impact is counted in occurrences, not customers.
INGEST_KINDS = (Kind.MAPPING_BREAK, Kind.REJECTED_WEBHOOKS, Kind.SILENCE)
# Kinds whose customers were hurt even when they got the message (twice, or under the wrong id).
REACHED_BUT_HURT_KINDS = (Kind.DUPLICATE_SEND, Kind.IDENTITY)


def absolute_url(path: str) -> str:
    return settings.NOTIFWATCH_BASE_URL + path


def exception_url(group: FailureGroup) -> str:
    return absolute_url(reverse("exception_detail", args=[group.pk]))


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def impact_words(group: FailureGroup) -> str:
    """'12 customers affected, 9 not reached, 15 occurrences.'"""
    if group.kind in INGEST_KINDS:
        return f"{plural(group.occurrences, 'occurrence')}."
    parts = [f"{plural(group.customers_affected, 'customer')} affected"]
    if group.kind not in REACHED_BUT_HURT_KINDS:
        parts.append(f"{group.customers_not_reached:,} not reached")
    parts.append(plural(group.occurrences, "occurrence"))
    return ", ".join(parts) + "."


def owner_names(team: Team | None, assignee) -> str:
    """'Engineering (team) · Rita (person)', or 'Nobody yet'."""
    parts = []
    if team is not None:
        parts.append(f"{team} (team)")
    if assignee is not None:
        parts.append(f"{person(assignee)} (person)")
    return " · ".join(parts) or "Nobody yet"


def owner_payload(team: Team | None, assignee) -> dict:
    return {
        "team": team.name if team is not None else None,
        "assignee": assignee.get_username() if assignee is not None else None,
        "assignee_name": person(assignee) if assignee is not None else None,
    }


def exception_message(
    group: FailureGroup,
    *,
    event: str,
    headline: str,
    happened: str,
    team: Team | None = None,
    assignee=None,
    owner_given: bool = False,
) -> Message:
    """One exception's alert: `headline` opens the subject, `happened` the body.

    The owner is the exception's own unless `owner_given` (an assignment names the owner it
    gave, which may no longer be the exception's by the time the alert is written).
    """
    if not owner_given:
        team, assignee = group.team, group.assignee
    explanation = explain(group, personal=True)
    url = exception_url(group)
    lines = [
        happened,
        "",
        f"Exception #{group.pk}: {group.title}",
        f"Why: {explanation.sentence}",
        f"What to do: {explanation.action}" if explanation.action else "",
        f"Who can fix it: {explanation.fix_owner}" if explanation.fix_owner else "",
        f"Where: {where_words(group)}" if where_words(group) else "",
        f"Impact: {impact_words(group)}",
        f"Owner: {owner_names(team, assignee)}",
        f"Status: {status_label(group.status)}",
        "",
        f"Open it: {url}",
    ]
    body = "\n".join(line for i, line in enumerate(lines) if line or lines[i - 1])
    return Message(
        subject=mask_text(f"{headline}: {group.title}"),
        body=body,
        link=url,
        payload={
            "event": event,
            "summary": happened,
            "exception": {
                "id": group.pk,
                "kind": group.kind,
                "title": group.title,
                "status": group.status,
                "reason": explanation.sentence,
                "action": explanation.action,
                "impact": {
                    "occurrences": group.occurrences,
                    "customers_affected": group.customers_affected,
                    "customers_reached_anyway": group.customers_reached_anyway,
                    "customers_not_reached": group.customers_not_reached,
                },
                "owner": owner_payload(team, assignee),
                "url": url,
            },
        },
    )


def assigned_message(
    group: FailureGroup,
    *,
    team: Team | None,
    assignee,
    actor,
    owner_team: Team | None = None,
    owner_assignee=None,
) -> Message:
    """'Assigned to CRM admins: <title>' — what the assignment gave; the owner line names the
    whole owner after it (`owner_team`, `owner_assignee`: a person given to a team's exception
    keeps the team)."""
    given = " and ".join(
        filter(None, [str(team) if team else "", person(assignee) if assignee else ""])
    )
    by = f" by {person(actor)}" if actor is not None else " by an owner rule"
    return exception_message(
        group,
        event="assigned",
        headline=f"Assigned to {given}",
        happened=f"This exception was assigned to {given}{by}.",
        team=owner_team or team,
        assignee=owner_assignee or assignee,
        owner_given=True,
    )


def regressed_message(group: FailureGroup, comment: str) -> Message:
    return exception_message(
        group,
        event="regressed",
        headline="Came back after it was resolved",
        happened="This exception was resolved, and it has happened again"
        + (f": {comment}." if comment else "."),
    )


def woke_message(group: FailureGroup, comment: str) -> Message:
    return exception_message(
        group,
        event="woke",
        headline="Back from snooze",
        happened="This exception was snoozed and is back in the open list"
        + (f" ({comment})." if comment else "."),
    )


def new_exception_message(group: FailureGroup) -> Message:
    return exception_message(
        group,
        event="new_exception",
        headline="New exception",
        happened="A new exception opened, and its impact passed the alert threshold for its kind.",
    )


def silence_message(group: FailureGroup, *, came_back: bool) -> Message:
    source = str(group.source or "A source")
    again = " again, after the last silence was resolved" if came_back else ""
    return exception_message(
        group,
        event="silence",
        headline=f"{source} went silent",
        happened=f"{source} went silent{again}.",
    )
