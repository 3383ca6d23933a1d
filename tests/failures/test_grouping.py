import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.failures import grouping
from notifwatch.failures.actions import set_status, snooze
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.impact import refresh_impact
from notifwatch.failures.models import (
    FailureGroup,
    Fingerprint,
    GroupHistory,
    HistoryKind,
    Kind,
    Occurrence,
    OwnerRule,
    Status,
)
from tests.exceptions.data import (
    bounce,
    bounced_order_confirmations,
    event,
    failure_problems,
    record_failures,
    send,
    simple_problem,
)


def history_kinds(group: FailureGroup) -> list[str]:
    return list(GroupHistory.objects.filter(group=group).values_list("kind", flat=True))


def test_it_groups_problems_with_one_fingerprint_into_one_exception(json_source):
    send(
        json_source, *[bounce(f"ord-{i}", f"2025-03-14T10:0{i}:00Z", f"cus_{i}") for i in range(3)]
    )
    send(json_source, bounce("ord-9", "2025-03-14T11:00:00Z", "cus_9"))
    first, *rest = failure_problems(Notification.objects.order_by("pk"))

    record_problems([first], rule="delivery failures")
    grown = record_problems(rest, rule="delivery failures")

    group = FailureGroup.objects.get()
    assert grown == {group.pk}
    assert Fingerprint.objects.get().group == group
    assert (group.occurrences, group.customers_affected) == (4, 4)
    assert group.first_seen.isoformat() == "2025-03-14T10:00:00+00:00"
    assert group.last_seen.isoformat() == "2025-03-14T11:00:00+00:00"
    assert history_kinds(group) == [HistoryKind.CREATED]


def test_it_keeps_different_fingerprints_apart(json_source):
    send(
        json_source,
        bounce("ord-1", "2025-03-14T10:00:00Z", "cus_1"),
        bounce("ord-2", "2025-03-14T10:00:00Z", "cus_2", purpose="renewal_notice"),
    )
    record_problems(failure_problems(Notification.objects.all()), rule="delivery failures")
    assert FailureGroup.objects.count() == 2


def test_it_counts_an_occurrence_once_however_often_it_is_seen(json_source):
    send(json_source, bounce("ord-1", "2025-03-14T10:00:00Z", "cus_1"))
    problems = failure_problems(Notification.objects.all())
    record_problems(problems, rule="delivery failures")
    audit_before = AuditEntry.objects.count()

    grown = record_problems(problems + problems, rule="delivery failures")

    group = FailureGroup.objects.get()
    assert grown == set()
    assert group.occurrences == 1
    assert Occurrence.objects.count() == 1
    assert history_kinds(group) == [HistoryKind.CREATED]
    assert AuditEntry.objects.count() == audit_before


def test_it_counts_raw_events_and_observed_subjects_once(db):
    problems = [simple_problem("silence:billing", 9), simple_problem("silence:billing", 10)]
    record_problems(problems, rule="silence")
    record_problems(problems, rule="silence")
    assert FailureGroup.objects.get().occurrences == 2


def test_it_reopens_a_resolved_exception_as_regressed(json_source):
    send(json_source, bounce("ord-1", "2025-03-14T10:00:00Z", "cus_1"))
    group = record_failures(Notification.objects.all())
    set_status(group, Status.RESOLVED)

    send(json_source, bounce("ord-2", "2025-03-15T09:00:00Z", "cus_2"))
    record_problems(failure_problems(Notification.objects.all()), rule="delivery failures")

    group.refresh_from_db()
    assert group.status == Status.REGRESSED
    assert group.occurrences == 2
    regressed = GroupHistory.objects.get(group=group, kind=HistoryKind.REGRESSED)
    assert regressed.actor is None
    assert regressed.rule == "delivery failures"
    assert regressed.comment == "1 new occurrence(s) after it was resolved"


def test_it_leaves_an_accepted_exception_accepted_when_it_grows(db):
    record_problems([simple_problem("late:otp", 1)], rule="late")
    group = FailureGroup.objects.get()
    set_status(group, Status.ACCEPTED)
    record_problems([simple_problem("late:otp", 2)], rule="late")
    group.refresh_from_db()
    assert (group.status, group.occurrences) == (Status.ACCEPTED, 2)


def test_it_wakes_a_snoozed_exception_when_it_grows_past_the_threshold(db):
    record_problems([simple_problem("dup:orders", 1)], rule="duplicates")
    group = FailureGroup.objects.get()
    snooze(group, timezone.now() + timedelta(days=30), wake_at_occurrences=3)

    record_problems([simple_problem("dup:orders", 2)], rule="duplicates")
    group.refresh_from_db()
    assert group.status == Status.SNOOZED

    record_problems([simple_problem("dup:orders", 3)], rule="duplicates")
    group.refresh_from_db()
    assert group.status == Status.NEW
    assert group.snoozed_until is None and group.snooze_wake_occurrences is None
    woke = GroupHistory.objects.get(group=group, kind=HistoryKind.WOKE)
    assert (woke.rule, woke.comment) == ("duplicates", "grew to 3 occurrences while snoozed")


def test_it_keeps_a_snoozed_exception_asleep_without_a_threshold(db):
    record_problems([simple_problem("dup:orders", 1)], rule="duplicates")
    group = FailureGroup.objects.get()
    snooze(group, timezone.now() + timedelta(days=30))
    record_problems([simple_problem("dup:orders", h) for h in range(2, 12)], rule="duplicates")
    group.refresh_from_db()
    assert (group.status, group.occurrences) == (Status.SNOOZED, 11)


def test_it_routes_a_new_exception_to_the_first_matching_owner_rule(json_source):
    crm, billing, platform = (Team.objects.create(name=n) for n in ("CRM", "Billing", "Platform"))
    OwnerRule.objects.create(position=5, team=platform, kind=Kind.SILENCE)  # does not match
    OwnerRule.objects.create(position=20, team=billing, source=json_source)  # matches, later
    first = OwnerRule.objects.create(position=10, team=crm, fix_owner="recipient_data")
    OwnerRule.objects.create(position=30, team=platform)  # matches anything, last

    group = bounced_order_confirmations(json_source)

    assert group.team == crm
    assert group.status == Status.ASSIGNED
    routed = GroupHistory.objects.get(group=group, kind=HistoryKind.ASSIGNED)
    assert routed.actor is None
    assert routed.rule == f"owner rule {first.pk} (delivery failures)"
    audit = AuditEntry.objects.get(action="exception.assigned")
    assert audit.actor_label == f"system: owner rule {first.pk} (delivery failures)"


def test_it_routes_only_on_arrival(json_source):
    group = bounced_order_confirmations(json_source)
    assert group.team is None and group.status == Status.NEW
    OwnerRule.objects.create(position=1, team=Team.objects.create(name="CRM"))
    send(json_source, bounce("ord-4:email", "2025-03-14T12:00:00Z", "cus_4"))
    record_problems(failure_problems(Notification.objects.all()), rule="delivery failures")
    group.refresh_from_db()
    assert group.team is None


def test_it_leaves_an_exception_unowned_when_no_rule_matches(json_source):
    OwnerRule.objects.create(team=Team.objects.create(name="Platform"), kind=Kind.SILENCE)
    group = bounced_order_confirmations(json_source)
    assert (group.team, group.assignee, group.status) == (None, None, Status.NEW)


def test_it_counts_customers_reached_anyway_and_not_reached(json_source):
    group = bounced_order_confirmations(json_source)
    # cus_2's order confirmation bounced by email but was delivered by SMS.
    assert group.customers_affected == 3
    assert group.customers_reached_anyway == 1
    assert group.customers_not_reached == 2


def test_it_counts_a_later_resend_for_the_same_order(json_source):
    group = bounced_order_confirmations(json_source)
    # Two hours later, long past the window: it carries the bounced one's order id.
    resend = event("ord-3:email:retry", "delivered", "2025-03-14T12:00:00Z", "cus_3")
    send(json_source, resend | {"refs": {"order_id": "ORD-ord-3:email"}})
    # Another purpose for cus_1 does not count: it is not the notification they missed.
    send(json_source, event("ship-1", "delivered", "2025-03-14T12:00:00Z", "cus_1", purpose="x"))

    refresh_impact([group.pk])

    group.refresh_from_db()
    assert (group.customers_reached_anyway, group.customers_not_reached) == (2, 1)


def test_it_counts_no_customers_for_problems_without_customer_ids(db):
    record_problems([simple_problem("silence:billing", 9)], rule="silence")
    group = FailureGroup.objects.get()
    assert (group.occurrences, group.customers_affected, group.customers_not_reached) == (1, 0, 0)


def test_it_adds_problems_of_a_merged_fingerprint_to_the_kept_exception(db):
    from notifwatch.failures.actions import merge

    record_problems([simple_problem("a", 1), simple_problem("b", 2)], rule="rule")
    kept, merged = FailureGroup.objects.order_by("pk")
    merge([merged], kept)

    grown = record_problems([simple_problem("b", 3)], rule="rule")

    assert grown == {kept.pk}
    kept.refresh_from_db()
    assert kept.occurrences == 3
    assert FailureGroup.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_exception_when_two_workers_race_for_a_fingerprint(monkeypatch):
    """Both workers look the fingerprint up before either creates it: the worst interleaving.

    The unique fingerprint constraint decides. The second worker's transaction starts only once
    the first has committed: SQLite (one writer at a time) would otherwise refuse it with
    "locked", and PostgreSQL would make it wait on the same row lock anyway; the collision on
    the constraint, and the recovery from it, are the same on both.
    """
    both_looked = threading.Barrier(2, timeout=10)
    first_done = threading.Event()
    real_atomic = transaction.atomic
    results: dict[str, set[int]] = {}
    errors: list[BaseException] = []
    local = threading.local()

    def atomic_once_both_looked(*args, **kwargs):
        # group_for's first transaction comes right after its fingerprint lookup.
        if threading.current_thread().name in ("first", "second") and not getattr(
            local, "waited", False
        ):
            local.waited = True
            both_looked.wait()
            if threading.current_thread().name == "second":
                first_done.wait(timeout=10)
        return real_atomic(*args, **kwargs)

    monkeypatch.setattr(grouping.transaction, "atomic", atomic_once_both_looked)
    creates = []
    real_create = FailureGroup.objects.create

    def counted_create(**kwargs):
        creates.append(threading.current_thread().name)
        return real_create(**kwargs)

    monkeypatch.setattr(FailureGroup.objects, "create", counted_create)

    def worker(hour: int) -> None:
        name = threading.current_thread().name
        try:
            problem = simple_problem("late:billing:otp", hour, kind=Kind.LATE)
            results[name] = record_problems([problem], rule=f"worker {name}")
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)
        finally:
            if name == "first":
                first_done.set()
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(h,), name=n) for h, n in ((8, "first"), (9, "second"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    # Both really tried to create it (the race happened); one exception stands.
    assert sorted(creates) == ["first", "second"]
    group = FailureGroup.objects.get()
    assert Fingerprint.objects.get().group == group
    assert results == {"first": {group.pk}, "second": {group.pk}}
    assert group.occurrences == 2
    assert history_kinds(group) == [HistoryKind.CREATED]
    assert AuditEntry.objects.filter(action="exception.created").count() == 1


class Killed(Exception):
    """Stands for a SIGKILL of the detection pass at that point."""


def test_a_pass_killed_before_the_figures_leaves_no_uncounted_occurrences(json_source, monkeypatch):
    send(
        json_source,
        bounce("ord-1:email", "2025-03-14T10:00:00Z", "cus_1"),
        bounce("ord-2:email", "2025-03-14T10:05:00Z", "cus_2"),
    )
    failed = Notification.objects.filter(source=json_source, counts_as_failure=True)

    def killed(group_ids):
        raise Killed

    monkeypatch.setattr(grouping, "refresh_impact", killed)
    with pytest.raises(Killed):
        record_problems(failure_problems(failed), rule="tests")
    monkeypatch.undo()
    # Either nothing of the killed pass stays, or its figures do: never rows under zeros.
    assert not Occurrence.objects.exists()

    group = record_failures(failed)

    assert (group.occurrences, group.customers_affected, group.customers_not_reached) == (2, 2, 2)
    assert Occurrence.objects.filter(group=group).count() == 2
