from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.models import AuditEntry
from notifwatch.failures import bulk
from notifwatch.failures.actions import set_status
from notifwatch.failures.bulk import Change, InvalidFilter, SetChanged, apply_bulk, preview
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Kind, Status
from tests.exceptions.data import simple_problem


def make(name: str, occurrences: int = 1, *, kind: str = Kind.LATE) -> FailureGroup:
    problems = [
        simple_problem(
            name,
            h,
            kind=kind,
            title=f"Exception {name}",
            occurred_at=datetime(2025, 3, 14, h, tzinfo=UTC),
        )
        for h in range(occurrences)
    ]
    (pk,) = record_problems(problems, rule="tests")
    return FailureGroup.objects.get(pk=pk)


@pytest.fixture
def groups(db) -> list[FailureGroup]:
    """Seven late exceptions of different sizes and one silence."""
    made = [make(f"late-{n}", occurrences=1 + n % 3) for n in range(7)]
    make("silence", kind=Kind.SILENCE)
    return made


def late_statuses() -> set[str]:
    return set(FailureGroup.objects.filter(kind=Kind.LATE).values_list("status", flat=True))


def test_preview_counts_exactly_and_samples_by_impact(groups, monkeypatch):
    monkeypatch.setattr(bulk, "SAMPLE_SIZE", 3)

    seen = preview("kind=late")

    assert seen.count == 7
    assert [g.title for g in seen.sample] == [
        g.title
        for g in FailureGroup.objects.filter(kind=Kind.LATE).order_by(
            "-customers_not_reached", "-occurrences", "-id"
        )[:3]
    ]
    assert seen.digest == bulk.digest_of(sorted(g.pk for g in groups))


def test_preview_narrows_to_the_ids_within_the_filter(groups):
    silence = FailureGroup.objects.get(kind=Kind.SILENCE)
    assert preview("kind=late", [groups[0].pk, silence.pk]).count == 1
    assert preview("", [groups[0].pk, silence.pk]).count == 2


def test_it_applies_to_every_row_across_chunks(groups, reviewer):
    seen = preview("kind=late")

    outcome = apply_bulk(
        "kind=late",
        Change("resolve"),
        actor=reviewer,
        expected=seen.count,
        digest=seen.digest,
        chunk_size=2,
    )

    assert (outcome.matched, outcome.changed, outcome.unchanged, outcome.gone) == (7, 7, 0, 0)
    assert late_statuses() == {Status.RESOLVED}
    assert FailureGroup.objects.get(kind=Kind.SILENCE).status == Status.NEW
    # Each exception has its own history and audit entry, through the action functions...
    for group in groups:
        entry = GroupHistory.objects.filter(group=group).last()
        assert (entry.kind, entry.actor, entry.new) == (
            HistoryKind.STATUS,
            reviewer,
            {"status": "resolved"},
        )
    assert AuditEntry.objects.filter(action="exception.status").count() == 7
    # ...and one entry records the change as a whole, with its filter and count.
    audit = AuditEntry.objects.get(action="exception.bulk_resolve")
    assert audit == outcome.audit
    assert (audit.actor, audit.actor_label) == (reviewer, "rita")
    assert (audit.target_type, audit.target_id) == ("exception_set", "filter")
    assert audit.new == {
        "filter": "kind=late",
        "count": 7,
        "scope": "filter",
        "verb": "resolve",
        "changed": 7,
        "unchanged": 0,
        "gone": 0,
    }


def test_it_processes_more_rows_than_the_default_chunk(db, reviewer, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK_SIZE", 5)
    now = timezone.now()
    FailureGroup.objects.bulk_create(
        FailureGroup(kind=Kind.LATE, title=f"g{n}", first_seen=now, last_seen=now)
        for n in range(23)
    )
    outcome = apply_bulk("kind=late", Change("accept"), actor=reviewer, expected=23)
    assert outcome.changed == 23
    assert late_statuses() == {Status.ACCEPTED}


def test_it_refuses_when_the_count_changed(groups, reviewer):
    seen = preview("kind=late")
    make("late-new")

    with pytest.raises(SetChanged) as refused:
        apply_bulk(
            "kind=late", Change("resolve"), actor=reviewer, expected=seen.count, digest=seen.digest
        )

    assert (refused.value.expected, refused.value.preview.count) == (7, 8)
    assert late_statuses() == {Status.NEW}
    assert not AuditEntry.objects.filter(action="exception.bulk_resolve").exists()


def test_it_refuses_when_the_set_changed_at_the_same_count(groups, reviewer):
    seen = preview("kind=late")
    set_status(groups[0], Status.ACCEPTED)
    make("late-new")

    with pytest.raises(SetChanged):
        apply_bulk(
            "kind=late", Change("resolve"), actor=reviewer, expected=seen.count, digest=seen.digest
        )
    assert Status.RESOLVED not in late_statuses()


def test_it_refuses_without_an_expected_count(groups, reviewer):
    with pytest.raises(SetChanged):
        apply_bulk("kind=late", Change("resolve"), actor=reviewer, expected=None)


def test_it_refuses_filters_that_do_not_validate(groups, reviewer):
    with pytest.raises(InvalidFilter):
        preview("owner=424242")
    with pytest.raises(InvalidFilter):
        apply_bulk("kind=nonsense", Change("resolve"), actor=reviewer, expected=0)


def test_it_leaves_rows_that_stop_matching_while_it_runs(groups, reviewer, monkeypatch):
    """Someone else accepts an exception after the count was checked: it is left alone."""
    seen = preview("kind=late")
    other = max(groups, key=lambda g: g.pk)
    calls = []

    def resolve_and_meanwhile(group, status, **kwargs):
        if not calls:
            set_status(other, Status.ACCEPTED)
        calls.append(group.pk)
        return set_status(group, status, **kwargs)

    monkeypatch.setattr(bulk, "set_status", resolve_and_meanwhile)

    outcome = apply_bulk(
        "kind=late", Change("resolve"), actor=reviewer, expected=seen.count, chunk_size=3
    )

    assert (outcome.changed, outcome.gone) == (6, 1)
    assert other.pk not in calls
    assert FailureGroup.objects.get(pk=other.pk).status == Status.ACCEPTED
    assert outcome.audit.new["gone"] == 1


def test_it_leaves_exceptions_already_in_that_state_alone(groups, reviewer):
    set_status(groups[0], Status.RESOLVED)
    before = GroupHistory.objects.filter(group=groups[0]).count()

    outcome = apply_bulk("kind=late&status=all", Change("resolve"), actor=reviewer, expected=7)

    assert (outcome.changed, outcome.unchanged) == (6, 1)
    assert GroupHistory.objects.filter(group=groups[0]).count() == before


def test_it_assigns_and_snoozes_through_the_action_functions(groups, reviewer, viewer):
    team = Team.objects.create(name="Billing")
    outcome = apply_bulk(
        "kind=late", Change("assign", team=team, assignee=viewer), actor=reviewer, expected=7
    )
    assert outcome.changed == 7
    assert set(FailureGroup.objects.filter(kind=Kind.LATE).values_list("team", "assignee")) == {
        (team.pk, viewer.pk)
    }
    # Assigning the same owner again changes nothing and writes nothing.
    again = apply_bulk("kind=late", Change("assign", team=team), actor=reviewer, expected=7)
    assert (again.changed, again.unchanged) == (0, 7)

    until = timezone.now().replace(microsecond=0) + timedelta(days=3)
    apply_bulk("kind=late", Change("snooze", until=until), actor=reviewer, expected=7)
    assert set(
        FailureGroup.objects.filter(kind=Kind.LATE).values_list("snoozed_until", flat=True)
    ) == {until}
    snoozed = AuditEntry.objects.get(action="exception.bulk_snooze")
    assert snoozed.new["until"] == until.isoformat()
    assert snoozed.new["filter"] == "kind=late" and snoozed.new["count"] == 7


def test_it_records_the_ticked_ids_of_a_selection(groups, reviewer):
    ids = [groups[2].pk, groups[4].pk]
    outcome = apply_bulk("kind=late", Change("accept"), actor=reviewer, expected=2, ids=ids)
    assert outcome.audit.new["ids"] == ids
    assert outcome.audit.target_id == "selection"
    assert outcome.audit.target_label == "2 exceptions matching kind=late"


@pytest.mark.parametrize(
    "kwargs",
    [{"verb": "explode"}, {"verb": "assign"}, {"verb": "snooze"}],
)
def test_a_change_needs_what_it_sets(kwargs):
    with pytest.raises(ValueError):
        Change(**kwargs)


# --- A background run killed part-way ------------------------------------------------------------


class Killed(Exception):
    """Stands for the SIGKILL: the process stops after some chunks committed."""


def kill_after_chunks(monkeypatch, chunks: int):
    real = bulk.apply_chunk
    done = []

    def apply_chunk(*args, **kwargs):
        if len(done) == chunks:
            raise Killed
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "apply_chunk", apply_chunk)
    return lambda: monkeypatch.setattr(bulk, "apply_chunk", real)


def test_a_killed_background_run_resumes_over_its_confirmed_set(groups, reviewer, monkeypatch):
    seen = preview("kind=late&status=open")
    revive = kill_after_chunks(monkeypatch, chunks=2)
    resolve = Change("resolve")
    with pytest.raises(Killed):
        bulk.apply_bulk_run(
            "task-1",
            "kind=late&status=open",
            resolve,
            actor=reviewer,
            expected=seen.count,
            digest=seen.digest,
            chunk_size=2,
        )
    assert FailureGroup.objects.filter(status=Status.RESOLVED).count() == 4
    revive()

    # The rerun's filter no longer matches the four it resolved: it must not call that a change.
    outcome = bulk.apply_bulk_run(
        "task-1",
        "kind=late&status=open",
        resolve,
        actor=reviewer,
        expected=seen.count,
        digest=seen.digest,
        chunk_size=2,
    )

    assert (outcome.matched, outcome.changed, outcome.unchanged, outcome.gone) == (7, 7, 0, 0)
    assert late_statuses() == {Status.RESOLVED}
    whole = AuditEntry.objects.get(action="exception.bulk_resolve")
    assert (whole.new["count"], whole.new["changed"], whole.new["gone"]) == (7, 7, 0)
    assert not AuditEntry.objects.filter(action="exception.bulk_resolve_abandoned").exists()
    # Each exception changed once: one status entry in its history, one in the audit trail.
    for group in groups:
        assert GroupHistory.objects.filter(group=group, kind=HistoryKind.STATUS).count() == 1
    assert AuditEntry.objects.filter(action="exception.status").count() == 7


def test_running_a_finished_background_run_again_changes_nothing(groups, reviewer):
    seen = preview("kind=late")
    first = bulk.apply_bulk_run(
        "task-2",
        "kind=late",
        Change("accept"),
        actor=reviewer,
        expected=seen.count,
        digest=seen.digest,
    )

    again = bulk.apply_bulk_run(
        "task-2",
        "kind=late",
        Change("accept"),
        actor=reviewer,
        expected=seen.count,
        digest=seen.digest,
    )

    assert again.audit == first.audit and again.changed == 7
    assert AuditEntry.objects.filter(action="exception.bulk_accept").count() == 1


def test_a_background_run_still_refuses_a_set_changed_before_it_started(groups, reviewer):
    seen = preview("kind=late&status=open")
    set_status(groups[0], Status.RESOLVED)

    with pytest.raises(SetChanged):
        bulk.apply_bulk_run(
            "task-3",
            "kind=late&status=open",
            Change("accept"),
            actor=reviewer,
            expected=seen.count,
            digest=seen.digest,
        )
    assert not FailureGroup.objects.filter(status=Status.ACCEPTED).exists()
