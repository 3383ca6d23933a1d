"""Audit entries in words: every action code our code writes has words, and values read as
sentences ("Team: CRM admins → Engineering"), never as a dict."""

import ast
from pathlib import Path

import pytest
from django.contrib import admin

from notifwatch.accounts.models import Team
from notifwatch.audit.wording import (
    ACTION_WORDS,
    VALUE_CHARS,
    Names,
    action_words,
    entry_words,
    names_for,
)
from notifwatch.failures import bulk
from notifwatch.failures.admin import AuditedConfigAdmin
from notifwatch.failures.models import HistoryKind

SOURCE = Path(__file__).resolve().parents[2] / "notifwatch"


# --- Every action code written has words ---------------------------------------------------


def audited_admin_models() -> list[str]:
    return sorted(
        model._meta.model_name
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, AuditedConfigAdmin)
    )


def bulk_verbs() -> list[str]:
    return ["assign", *bulk.VERB_STATUS, "snooze"]


# Codes built from a pattern ("exception.{kind}"), and what fills their blanks. A new pattern
# fails the test below until it is listed here (and its codes get words).
PATTERNS = {
    "exception.{}": lambda: HistoryKind.values,
    "exception.bulk_{}": bulk_verbs,
    "exception.bulk_{}_abandoned": bulk_verbs,
    "{}.{}": lambda: [
        f"{model}.{verb}" for model in audited_admin_models() for verb in ("created", "changed")
    ],
    "{}.deleted": audited_admin_models,
}


class Module:
    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.constants: dict[str, ast.expr] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = node.value
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        for name, value in zip(target.elts, node.value.elts, strict=True):
                            if isinstance(name, ast.Name):
                                self.constants[name.id] = value
        self.functions = {
            node.name: node for node in ast.walk(self.tree) if isinstance(node, ast.FunctionDef)
        }

    def codes(self, value: ast.expr, function: ast.FunctionDef | None) -> set[str]:
        """The action codes an `action=` value can be."""
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return {value.value}
        if isinstance(value, ast.IfExp):
            return self.codes(value.body, function) | self.codes(value.orelse, function)
        if isinstance(value, ast.JoinedStr):
            pattern = "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in value.values
            )
            if pattern not in PATTERNS:
                pytest.fail(
                    f"{self.path}: a new action code pattern {pattern!r}: list it in PATTERNS"
                )
            filled = PATTERNS[pattern]()
            return {pattern.format(v) if pattern.count("{}") == 1 else v for v in filled}
        if isinstance(value, ast.Name):
            if value.id in self.constants:
                return self.codes(self.constants[value.id], None)
            if function is not None:
                return self.passed_as(function, value.id)
        pytest.fail(f"{self.path}:{value.lineno}: cannot tell which action code this writes")

    def passed_as(self, function: ast.FunctionDef, parameter: str) -> set[str]:
        """The codes the module's calls of `function` pass as its `parameter`."""
        position = [arg.arg for arg in function.args.args].index(parameter)
        found = set()
        for call in ast.walk(self.tree):
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == function.name:
                given = [k.value for k in call.keywords if k.arg == parameter]
                value = given[0] if given else call.args[position]
                found |= self.codes(value, None)
        return found

    def action_codes(self) -> set[str]:
        # Each call with the innermost function around it (ast.walk meets outer ones first).
        owner: dict[ast.Call, ast.FunctionDef | None] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                owner.setdefault(node, None)
        for function in self.functions.values():
            for node in ast.walk(function):
                if isinstance(node, ast.Call):
                    owner[node] = function
        found = set()
        for call, function in owner.items():
            if not writes_an_entry(call) or (function and function.name == "record_audit"):
                continue  # record_audit passes its callers' codes on: they are read there
            for keyword in call.keywords:
                if keyword.arg == "action":
                    found |= self.codes(keyword.value, function)
        return found


def writes_an_entry(call: ast.Call) -> bool:
    """record_audit(...), AuditEntry.objects.create(...) or AuditEntry(...)."""
    if isinstance(call.func, ast.Name):
        return call.func.id in ("record_audit", "AuditEntry")
    return isinstance(call.func, ast.Attribute) and ast.unparse(call.func) == (
        "AuditEntry.objects.create"
    )


def written_action_codes() -> set[str]:
    codes = set()
    for path in sorted(SOURCE.rglob("*.py")):
        if "migrations" not in path.parts:
            codes |= Module(path).action_codes()
    return codes


@pytest.fixture(scope="module")
def written() -> set[str]:
    return written_action_codes()


def test_it_finds_the_codes_written_directly_through_constants_and_patterns(written):
    assert {
        "exception.assigned",  # "exception." + a history kind
        "exception.bulk_resolve_abandoned",
        "source.reprocessed",  # a module constant
        "user.locked_out",  # a constant passed to a helper that writes the entry
        "user.deactivated",  # one side of a conditional
        "team.deleted",  # the admin's audited settings
        "export.downloaded",
    } <= written
    assert "store_true" not in written


def test_every_action_code_written_has_words_and_every_word_a_code(written):
    assert sorted(written - set(ACTION_WORDS)) == [], "add their words to ACTION_WORDS"
    assert sorted(set(ACTION_WORDS) - written) == [], "no code writes these any more"


@pytest.mark.parametrize("code", sorted(ACTION_WORDS))
def test_each_action_reads_as_words_not_as_its_code(code):
    words = action_words(code, {}, {})
    assert words == ACTION_WORDS[code]
    assert "." not in words and "_" not in words and words[0].isupper()


def test_an_unknown_action_code_is_humanised():
    assert action_words("widget.price_changed") == "Widget: price changed"
    assert action_words("reindexed") == "Reindexed"


# --- Values ---------------------------------------------------------------------------------


def words(code, old=None, new=None, detail="", *, names=None, personal=True):
    return entry_words(code, old, new, detail, names=names or Names(), personal=personal)


def test_a_status_change_says_what_it_was():
    resolved = words("exception.status", {"status": "assigned"}, {"status": "resolved"})
    assert (resolved.action, resolved.changes) == ("Resolved", ["Status: Assigned → Resolved"])
    assert words("exception.status", {"status": "resolved"}, {"status": "new"}).action == (
        "Reopened as new"
    )
    assert resolved.code == "exception.status"


@pytest.mark.django_db
def test_team_and_person_ids_become_names_looked_up_once(django_assert_num_queries, reviewer):
    crm, engineering = Team.objects.create(name="CRM admins"), Team.objects.create(name="Eng")
    reviewer.first_name, reviewer.last_name = "Dana", "Reviewer"
    reviewer.save()
    sides = [
        {"team": crm.pk, "assignee": None, "status": "assigned"},
        {"team": engineering.pk, "assignee": reviewer.pk, "status": "assigned"},
        {"team": 9999},
    ]
    with django_assert_num_queries(2):
        names = names_for(sides)

    entry = words("exception.assigned", sides[0], sides[1], names=names)
    assert entry.action == "Assigned"
    assert entry.changes == ["Team: CRM admins → Eng", "Assignee: nobody → Dana Reviewer"]
    gone = words("exception.assigned", {"team": None}, {"team": 9999}, names=names)
    assert gone.changes == ["Team: none → team #9999 (deleted)"]


def test_people_settings_read_as_sentences():
    zone = words("user.time_zone_changed", {"time_zone": "UTC"}, {"time_zone": "Europe/Berlin"})
    assert (zone.action, zone.changes) == ("Changed time zone", ["Time zone: UTC → Europe/Berlin"])
    assert words("user.time_zone_changed", {"time_zone": ""}, {"time_zone": "UTC"}).changes == [
        "Time zone: server default → UTC"
    ]
    assert words("user.role_changed", {"role": "viewer"}, {"role": "admin"}).changes == [
        "Role: Viewer → Admin"
    ]
    grant = words(
        "user.personal_data_changed",
        {"personal_data_granted": False},
        {"personal_data_granted": True},
    )
    assert grant.changes == ["Sees personal data: no → yes"]
    teams = words("user.teams_changed", {"teams": []}, {"teams": ["Billing", "CRM admins"]})
    assert teams.changes == ["Teams: none → Billing, CRM admins"]


def test_a_creation_lists_what_it_set_and_a_removal_what_it_held():
    created = words("subscription.created", None, {"channel": "email", "is_active": True})
    assert created.changes == ["Channel: email", "Active: yes"]
    removed = words("subscription.removed", {"channel": "chat", "digest_hour": None})
    assert removed.changes == ["Channel: chat"]


def test_unknown_keys_are_humanised_and_nested_values_read_key_by_key():
    entry = words(
        "exception.bulk_assign",
        None,
        {
            "team": {"id": 3, "name": "Billing"},
            "assignee": {"id": 4, "username": "rita"},
            "outcome_counts": {"changed": 2, "already_there": 1},
            "ids": [11, 12],
        },
    )
    assert entry.changes == [
        "Team: Billing",
        "Assignee: rita",
        "Outcome counts: Changed: 2, Already there: 1",
        "Ids: 11, 12",
    ]


def test_moments_are_shown_in_the_readers_time_zone():
    from django.utils import timezone

    with timezone.override("Europe/Berlin"):
        entry = words(
            "exception.snoozed",
            {"status": "assigned"},
            {"status": "snoozed", "until": "2031-05-20T08:00:00+00:00", "wake_at_occurrences": 40},
        )
    assert entry.changes == [
        "Status: Assigned → Snoozed",
        "Until: Tue May 20, 10:00",
        "Or when it reaches: 40 occurrences",
    ]
    day = words("review.started", None, {"week_start": "2031-05-19"})
    assert day.changes == ["Week start: Mon May 19, 2031"]


def test_long_values_are_shortened_and_personal_data_masked_unless_allowed():
    error = "Could not reach chloe.martin@example.com or +14155550118: " + "timed out, " * 100
    masked = words(
        "raw_event.failed", None, {"error": error}, "Ask chloe.martin@example.com", personal=False
    )
    (line,) = masked.changes
    assert "chloe.martin@example.com" not in line and "+14155550118" not in line
    assert "c•••@example.com" in line and "+1•••••0118" in line
    assert len(line) < VALUE_CHARS + 100 and "more characters not shown" in line
    assert masked.detail == "Ask c•••@example.com"
    shown = words("raw_event.failed", None, {"error": error}, "Ask chloe.martin@example.com")
    assert "chloe.martin@example.com" in shown.changes[0] and "chloe" in shown.detail
    nested = words(
        "source.reprocessed", None, {"errors": [{"raw": 4, "error": error}]}, personal=False
    )
    assert "chloe.martin@example.com" not in nested.changes[0]


def test_an_entry_that_changed_nothing_says_so():
    same = {"team": 1, "assignee": None, "status": "assigned"}
    assert words("exception.assigned", same, dict(same)).changes == ["Nothing changed"]
    assert words("exception.note", detail="Called the CRM team").changes == []


def test_a_merge_says_where_it_went_and_what_it_was():
    gone = words("exception.merged", {"status": "assigned"}, {"merged_into": 7})
    assert gone.action == "Merged into another exception"
    assert gone.changes == ["Merged into: #7", "Status was: Assigned"]
    kept = words("exception.merged", None, {"merged_from": 8})
    assert (kept.action, kept.changes) == ("Took in another exception", ["Merged in: #8"])
