from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import (
    add_note,
    assign,
    merge,
    regress,
    set_status,
    snooze,
    wake,
)
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import (
    FailureGroup,
    Fingerprint,
    GroupHistory,
    HistoryKind,
    Occurrence,
    Status,
)
from tests.exceptions.data import bounced_order_confirmations, simple_problem


@pytest.fixture
def group(db) -> FailureGroup:
    record_problems([simple_problem("silence:billing", h) for h in (9, 10)], rule="silence")
    return FailureGroup.objects.get()


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="Billing")


def last_history(group: FailureGroup) -> GroupHistory:
    return GroupHistory.objects.filter(group=group).last()


def last_audit() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()


def test_it_assigns_a_team_and_marks_it_assigned(group, team, reviewer):
    assign(group, team=team, actor=reviewer)

    group.refresh_from_db()
    assert (group.team, group.assignee, group.status) == (team, None, Status.ASSIGNED)
    entry = last_history(group)
    assert (entry.kind, entry.actor) == (HistoryKind.ASSIGNED, reviewer)
    assert entry.old == {"team": None, "assignee": None, "status": "new"}
    assert entry.new == {"team": team.pk, "assignee": None, "status": "assigned"}
    audit = last_audit()
    assert (audit.action, audit.actor, audit.actor_label) == (
        "exception.assigned",
        reviewer,
        "rita",
    )
    assert (audit.target_type, audit.target_id) == ("failures.failuregroup", str(group.pk))
    assert audit.new == entry.new


def test_it_never_clears_the_team_when_assigning_a_person(group, team, reviewer, viewer):
    assign(group, team=team, actor=reviewer)
    assign(group, assignee=viewer, actor=reviewer)

    group.refresh_from_db()
    assert (group.team, group.assignee) == (team, viewer)
    other = Team.objects.create(name="CRM")
    assign(group, team=other, actor=reviewer)
    group.refresh_from_db()
    assert (group.team, group.assignee) == (other, viewer)


def test_assigning_the_owner_it_already_has_writes_nothing(group, team, reviewer, viewer):
    assign(group, team=team, assignee=viewer, actor=reviewer)
    updated_at = FailureGroup.objects.get(pk=group.pk).updated_at
    rows, entries = GroupHistory.objects.count(), AuditEntry.objects.count()

    assign(group, team=team, actor=reviewer)
    assign(group, assignee=viewer, rule="owner rule 1 (delivery failures)")
    assign(group, team=team, assignee=viewer, actor=reviewer)

    assert (GroupHistory.objects.count(), AuditEntry.objects.count()) == (rows, entries)
    assert FailureGroup.objects.get(pk=group.pk).updated_at == updated_at
    # A real change still writes its row and entry.
    assign(group, assignee=reviewer, actor=reviewer)
    assert (GroupHistory.objects.count(), AuditEntry.objects.count()) == (rows + 1, entries + 1)


def test_it_keeps_a_decided_status_when_assigning(group, team, reviewer):
    set_status(group, Status.ACCEPTED, actor=reviewer)
    assign(group, team=team, actor=reviewer)
    group.refresh_from_db()
    assert group.status == Status.ACCEPTED


def test_it_resolves_and_stamps_the_time(group, reviewer):
    set_status(group, Status.RESOLVED, actor=reviewer, comment="Mapping fixed")

    group.refresh_from_db()
    assert group.status == Status.RESOLVED
    assert timezone.now() - group.resolved_at < timedelta(minutes=1)
    entry = last_history(group)
    assert (entry.kind, entry.old, entry.new) == (
        HistoryKind.STATUS,
        {"status": "new"},
        {"status": "resolved"},
    )
    assert entry.comment == "Mapping fixed"
    assert (last_audit().action, last_audit().detail) == ("exception.status", "Mapping fixed")


def test_it_clears_the_snooze_when_the_status_changes(group, reviewer):
    snooze(group, timezone.now() + timedelta(days=3), wake_at_occurrences=10, actor=reviewer)
    set_status(group, Status.NEW, actor=reviewer)
    group.refresh_from_db()
    assert (group.status, group.snoozed_until, group.snooze_wake_occurrences) == (
        Status.NEW,
        None,
        None,
    )


def test_it_refuses_an_unknown_status(group):
    with pytest.raises(ValueError):
        set_status(group, "closed")
    assert not GroupHistory.objects.filter(group=group, kind=HistoryKind.STATUS).exists()


def test_it_snoozes_then_wakes_to_its_owner(group, team, reviewer):
    assign(group, team=team, actor=reviewer)
    until = timezone.now() + timedelta(days=7)

    snooze(group, until, wake_at_occurrences=50, actor=reviewer, comment="Provider ticket open")

    group.refresh_from_db()
    assert (group.status, group.snoozed_until, group.snooze_wake_occurrences) == (
        Status.SNOOZED,
        until,
        50,
    )
    assert last_history(group).new == {
        "status": "snoozed",
        "until": until.isoformat(),
        "wake_at_occurrences": 50,
    }
    assert last_audit().action == "exception.snoozed"

    wake(group, rule="snooze wake-ups", why="its date came")

    group.refresh_from_db()
    assert (group.status, group.snoozed_until, group.snooze_wake_occurrences) == (
        Status.ASSIGNED,
        None,
        None,
    )
    woke = last_history(group)
    assert (woke.kind, woke.actor, woke.rule, woke.comment) == (
        HistoryKind.WOKE,
        None,
        "snooze wake-ups",
        "its date came",
    )
    assert (woke.old, woke.new) == ({"status": "snoozed"}, {"status": "assigned"})
    assert last_audit().actor_label == "system: snooze wake-ups"


def test_it_wakes_an_unowned_exception_as_new(group):
    snooze(group, timezone.now() + timedelta(days=1))
    wake(group, rule="snooze wake-ups", why="its date came")
    group.refresh_from_db()
    assert group.status == Status.NEW


def test_it_does_not_wake_what_is_not_snoozed(group):
    before = GroupHistory.objects.count()
    wake(group, rule="snooze wake-ups", why="its date came")
    group.refresh_from_db()
    assert group.status == Status.NEW
    assert GroupHistory.objects.count() == before


@pytest.mark.parametrize(
    "status", [Status.NEW, Status.ASSIGNED, Status.ACCEPTED, Status.SNOOZED, Status.REGRESSED]
)
def test_it_regresses_only_from_resolved(group, status):
    FailureGroup.objects.filter(pk=group.pk).update(status=status)
    before = (GroupHistory.objects.count(), AuditEntry.objects.count())

    regress(group, rule="delivery failures", new_occurrences=3)

    group.refresh_from_db()
    assert group.status == status
    assert (GroupHistory.objects.count(), AuditEntry.objects.count()) == before


def test_it_regresses_a_resolved_exception(group, reviewer):
    set_status(group, Status.RESOLVED, actor=reviewer)
    regress(group, rule="delivery failures", new_occurrences=3)
    group.refresh_from_db()
    assert group.status == Status.REGRESSED
    entry = last_history(group)
    assert (entry.kind, entry.rule, entry.comment) == (
        HistoryKind.REGRESSED,
        "delivery failures",
        "3 new occurrence(s) after it was resolved",
    )
    assert (entry.old, entry.new) == ({"status": "resolved"}, {"status": "regressed"})
    assert last_audit().actor_label == "system: delivery failures"


def test_it_adds_a_note(group, reviewer):
    add_note(group, "Asked billing to check the template.", actor=reviewer)
    entry = last_history(group)
    assert (entry.kind, entry.actor, entry.comment) == (
        HistoryKind.NOTE,
        reviewer,
        "Asked billing to check the template.",
    )
    assert (last_audit().action, last_audit().actor) == ("exception.note", reviewer)


def test_it_merges_fingerprints_and_occurrences_and_keeps_both_histories(db, reviewer):
    record_problems(
        [simple_problem("a", 1), simple_problem("a", 2), simple_problem("b", 5)], rule="rule"
    )
    kept, merged = FailureGroup.objects.order_by("pk")
    add_note(merged, "Same outage as the other one.", actor=reviewer)
    # An occurrence both already count stays once.
    Occurrence.objects.create(group=merged, subject="a@1", occurred_at=kept.first_seen)

    result = merge([merged], kept, actor=reviewer)

    merged.refresh_from_db()
    assert merged.merged_into == result
    assert merged.status == Status.RESOLVED
    assert set(Fingerprint.objects.values_list("value", "group")) == {
        ("a", kept.pk),
        ("b", kept.pk),
    }
    assert Occurrence.objects.filter(group=merged).count() == 0
    assert sorted(Occurrence.objects.filter(group=kept).values_list("subject", flat=True)) == [
        "a@1",
        "a@2",
        "b@5",
    ]
    assert result.occurrences == 3
    assert result.last_seen.hour == 5
    assert list(GroupHistory.objects.filter(group=merged).values_list("kind", flat=True)) == [
        HistoryKind.CREATED,
        HistoryKind.NOTE,
        HistoryKind.MERGED,
    ]
    assert last_history(merged).new == {"merged_into": kept.pk}
    assert last_history(kept).new == {"merged_from": merged.pk}
    assert FailureGroup.objects.open_for_review().get() == kept
    assert AuditEntry.objects.filter(action="exception.merged", actor=reviewer).count() == 2


def test_it_recounts_customers_after_a_merge(json_source):
    kept = bounced_order_confirmations(json_source)
    record_problems([simple_problem("other", 1, customer_id="cus_9")], rule="rule")
    other = FailureGroup.objects.exclude(pk=kept.pk).get()

    result = merge([other], kept)

    assert (result.customers_affected, result.customers_not_reached) == (4, 3)
