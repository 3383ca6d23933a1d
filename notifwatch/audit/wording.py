"""Audit entries in words: "Assigned" with "Team: CRM admins → Engineering", not a dict.

An entry keeps its action code and its old and new values as written (exports and scripts read
them as they are); people read them here. The audit page and an exception's history both word
their entries through `entry_words`, so the two never say the same change differently.

Every action code our code writes has its words in ACTION_WORDS: tests/audit/test_wording.py
reads the codes from the source and fails on one without words. A code the table does not know
(an old entry's, a test's) still reads: "widget.price_changed" as "Widget: price changed".
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.utils import dateformat, timezone

from notifwatch.accounts.masking import shown_text
from notifwatch.accounts.models import Role, Team
from notifwatch.failures.models import Decision, Status
from notifwatch.lib.moments import parse_moment

# A value in a sentence: about this many characters, then a note of how many were left out.
VALUE_CHARS = 200

ACTION_WORDS: dict[str, str] = {
    # An exception's own story (failures/actions.py: "exception." + its history kind).
    "exception.created": "Opened",
    "exception.grew": "New occurrences",
    "exception.assigned": "Assigned",
    "exception.status": "Changed status",
    "exception.snoozed": "Snoozed",
    "exception.woke": "Woke up from snooze",
    "exception.regressed": "Reopened: it happened again after it was resolved",
    "exception.merged": "Merged",
    "exception.note": "Added a note",
    # Many exceptions at once (failures/bulk.py, failures/tasks.py).
    "exception.bulk_assign": "Assigned many exceptions at once",
    "exception.bulk_resolve": "Resolved many exceptions at once",
    "exception.bulk_accept": "Accepted many exceptions as expected",
    "exception.bulk_snooze": "Snoozed many exceptions at once",
    "exception.bulk_assign_abandoned": "Stopped assigning many exceptions: they changed",
    "exception.bulk_resolve_abandoned": "Stopped resolving many exceptions: they changed",
    "exception.bulk_accept_abandoned": "Stopped accepting many exceptions: they changed",
    "exception.bulk_snooze_abandoned": "Stopped snoozing many exceptions: they changed",
    # The weekly review (failures/reviews.py).
    "review.started": "Started the weekly review",
    "review.decided": "Decided on an agenda item",
    "review.routing_confirmed": "Kept the teams the owner rules gave",
    "review.finished": "Finished the weekly review",
    # Sources and their events (ingest).
    "source.created": "Added a source",
    "source.changed": "Changed a source",
    "source.token_rotated": "Replaced the source's secret",
    "source.mapping_changed": "Changed the field mapping",
    "source.reprocessed": "Reprocessed quarantined events",
    "source.imported": "Imported a file",
    "raw_event.failed": "Gave up processing a raw event",
    # People (accounts).
    "user.created": "Created a user",
    "user.role_changed": "Changed role",
    "user.personal_data_changed": "Changed who sees personal data",
    "user.teams_changed": "Changed teams",
    "user.deactivated": "Deactivated",
    "user.reactivated": "Reactivated",
    "user.password_set": "Set a new password",
    "user.time_zone_changed": "Changed time zone",
    "user.login": "Signed in",
    "user.login_failed": "Failed to sign in",
    "user.locked_out": "Locked out after failed sign-ins",
    # Settings an admin edits in the Django admin (failures/admin.py AuditedConfigAdmin).
    "team.created": "Created a team",
    "team.changed": "Changed a team",
    "team.deleted": "Deleted a team",
    "ownerrule.created": "Added an owner rule",
    "ownerrule.changed": "Changed an owner rule",
    "ownerrule.deleted": "Deleted an owner rule",
    "timingwindow.created": "Added a timing window",
    "timingwindow.changed": "Changed a timing window",
    "timingwindow.deleted": "Deleted a timing window",
    # Alerts, API tokens, notifwatch's own health.
    "subscription.created": "Subscribed to alerts",
    "subscription.changed": "Changed an alert subscription",
    "subscription.removed": "Removed an alert subscription",
    "subscription.test_sent": "Sent a test alert",
    "api.token_created": "Created an API token",
    "api.token_revoked": "Revoked an API token",
    "api.read": "Read through the API",
    "health.failing": "A health check started failing",
    "health.recovered": "A health check recovered",
    # Reading out, keeping less, the demo.
    "export.downloaded": "Exported",
    "retention.pruned": "Deleted records past their retention",
    "demo.seeded": "Loaded the demo data",
}

# A status change says what the change was.
STATUS_ACTION_WORDS = {
    Status.RESOLVED: "Resolved",
    Status.ACCEPTED: "Accepted as expected",
    Status.NEW: "Reopened as new",
    Status.ASSIGNED: "Reopened for its owner",
    Status.REGRESSED: "Reopened as regressed",
    Status.SNOOZED: "Snoozed",
}

KEY_WORDS = {
    "assignee": "Assignee",
    "credential_hint": "Secret hint",
    "hint": "Secret hint",
    "ip": "From address",
    "is_active": "Active",
    "merged_from": "Merged in",
    "merged_into": "Merged into",
    "personal_data_granted": "Sees personal data",
    "snooze_until": "Snoozed until",
    "time_zone": "Time zone",
    "until": "Until",
    "wake_at_occurrences": "Or when it reaches",
}

# Values that name something: looked up, or written the way the pages write them.
PEOPLE_KEYS = ("assignee",)
TEAM_KEYS = ("team",)
EXCEPTION_KEYS = ("exception", "merged_into", "merged_from")
MOMENT_KEYS = ("until", "snooze_until", "failing_since", "week_start", "now", "at")
CHOICES = {"status": Status, "decision": Decision, "role": Role}


@dataclass(frozen=True)
class Names:
    """Team and person names for the ids a page's entries hold, looked up once for all."""

    teams: dict[int, str] = field(default_factory=dict)
    people: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EntryWords:
    code: str  # the action code as stored, for scripts and engineers
    action: str  # "Assigned"
    changes: list[str]  # ["Team: CRM admins → Engineering", ...]
    detail: str = ""


def person(user) -> str:
    return user.get_full_name() or user.get_username()


def names_for(sides: Iterable) -> Names:
    """One query for the teams and one for the people the entries' old and new values name."""
    team_ids, person_ids = set(), set()
    for side in sides:
        if isinstance(side, dict):
            # Ids only: a bulk change stores its team as {"id", "name"} already.
            team_ids.update(v for key in TEAM_KEYS if type(v := side.get(key)) is int)
            person_ids.update(v for key in PEOPLE_KEYS if type(v := side.get(key)) is int)
    teams = dict(Team.objects.filter(pk__in=team_ids).values_list("pk", "name")) if team_ids else {}
    people = (
        {u.pk: person(u) for u in get_user_model().objects.filter(pk__in=person_ids)}
        if person_ids
        else {}
    )
    return Names(teams, people)


def entries_in_words(entries: list, *, personal: bool) -> list[EntryWords]:
    """Audit entries (anything with action, old, new and detail) in words, in their order."""
    names = names_for(side for e in entries for side in (e.old, e.new))
    return [
        entry_words(e.action, e.old, e.new, e.detail, names=names, personal=personal)
        for e in entries
    ]


def entry_words(
    code: str, old, new, detail: str = "", *, names: Names, personal: bool
) -> EntryWords:
    """What an entry did, and each change as "Field: before → after" (or "Field: value").

    Text is masked unless `personal` (notes, titles and errors may quote an address or a
    number), a value cut to about VALUE_CHARS characters, the detail (a note) as pages cut it.
    """
    changes = change_lines(old, new, names=names, personal=personal)
    if not changes and old and new:
        changes = ["Nothing changed"]  # entries from before no-op actions stopped writing any
    return EntryWords(
        code=code,
        action=action_words(code, old, new),
        changes=changes,
        detail=shown_text(detail, personal=personal),
    )


def action_words(code: str, old=None, new=None) -> str:
    new = new if isinstance(new, dict) else {}
    if code == "exception.status":
        return STATUS_ACTION_WORDS.get(new.get("status"), ACTION_WORDS[code])
    if code == "exception.merged":
        if new.get("merged_into"):
            return "Merged into another exception"
        if new.get("merged_from"):
            return "Took in another exception"
    if code in ACTION_WORDS:
        return ACTION_WORDS[code]
    subject, _, verb = code.partition(".")
    return f"{humanise(subject)}: {verb.replace('_', ' ')}" if verb else humanise(code)


def change_lines(old, new, *, names: Names, personal: bool) -> list[str]:
    """Each field that changed as "Field: before → after"; a field on one side only as
    "Field: value" (what a creation set, what a removal held), or "Field was: value" beside
    new values (the status a merge ended). Fields equal on both sides are the entry's context,
    not its change (the status an assignment kept): left out."""
    old, new = fields(old), fields(new)
    lines = []
    for key in [*new, *(key for key in old if key not in new)]:
        if key in old and key in new:
            if old[key] == new[key]:
                continue
            before = value_words(key, old[key], names=names, personal=personal)
            after = value_words(key, new[key], names=names, personal=personal)
            lines.append(f"{key_words(key)}: {before} → {after}")
            continue
        value = new[key] if key in new else old[key]
        if value is not None:
            said = value_words(key, value, names=names, personal=personal)
            was = " was" if key in old and new else ""
            lines.append(f"{key_words(key)}{was}: {said}")
    return lines


def fields(side) -> dict:
    if isinstance(side, dict):
        return side
    return {} if side is None else {"value": side}


def key_words(key: str) -> str:
    return KEY_WORDS.get(key) or humanise(key)


def humanise(key: str) -> str:
    return str(key).replace("_", " ").strip().capitalize() or "Value"


def value_words(key: str, value, *, names: Names, personal: bool) -> str:
    """One value as a reader says it; nested lists and objects as "a, b" and "key: value"."""
    if value is None:
        return "nobody" if key in PEOPLE_KEYS else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in TEAM_KEYS and isinstance(value, int):
        return names.teams.get(value, f"team #{value} (deleted)")
    if key in PEOPLE_KEYS and isinstance(value, int):
        return names.people.get(value, f"user #{value} (deleted)")
    if key in EXCEPTION_KEYS and isinstance(value, int):
        return f"#{value}"
    if key in CHOICES and value in CHOICES[key].values:
        return CHOICES[key](value).label
    if key == "time_zone" and value == "":
        return "server default"
    if key == "wake_at_occurrences" and type(value) is int:
        return f"{value:,} occurrences"
    if key in MOMENT_KEYS and isinstance(value, str):
        moment = moment_words(value)
        if moment:
            return moment
    if isinstance(value, dict):
        # A named thing ({"id": 3, "name": "Billing"}) by its name; anything else key by key.
        for name in ("name", "username"):
            if isinstance(value.get(name), str):
                return shown_text(value[name], personal=personal, limit=VALUE_CHARS)
        text = ", ".join(
            f"{humanise(k)}: {value_words(k, v, names=names, personal=personal)}"
            for k, v in value.items()
        )
        return cut(text or "nothing", personal=True)
    if isinstance(value, list):
        text = ", ".join(value_words(key, v, names=names, personal=personal) for v in value)
        return cut(text or "none", personal=True)
    if isinstance(value, str):
        return shown_text(value, personal=personal, limit=VALUE_CHARS) or "none"
    return str(value)


def cut(text: str, *, personal: bool) -> str:
    # Parts of a nested value are masked already: only the length is left to bound.
    return shown_text(text, personal=personal, limit=VALUE_CHARS)


def moment_words(value: str) -> str:
    """A stored ISO moment in the reader's time zone; a date alone as a date."""
    moment = parse_moment(value)
    if moment is None:
        return ""
    if len(value) == 10:  # "2025-03-10": a day, not a moment
        return dateformat.format(moment, "D M j, Y")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return dateformat.format(timezone.localtime(moment), "D M j, H:i")
