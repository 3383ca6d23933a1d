import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.models import Schedule
from notifwatch.worker.scheduling import (
    REGISTRY,
    claim_and_enqueue,
    enqueue_due,
    ensure_schedules,
)

pytestmark = pytest.mark.django_db


def test_run_checks_is_registered_every_minute():
    jobs = {job.name: job for job in REGISTRY}
    assert jobs["run_checks"].task_path == "notifwatch.failures.detection.run_checks"
    assert jobs["run_checks"].interval_seconds == 60
    assert jobs["sweep_stale_tasks"].interval_seconds == 60
    assert jobs["retry_raw_events"].interval_seconds == 60

    now = timezone.now()
    ensure_schedules(now)
    ensure_schedules(now)  # a second worker starting: nothing new

    rows = {s.name: s for s in Schedule.objects.all()}
    # One row per job, whichever apps add jobs (alerts and health add theirs).
    assert set(rows) == {job.name for job in REGISTRY}
    assert set(rows) >= {"run_checks", "refresh_counts", "sweep_stale_tasks", "retry_raw_events"}
    assert rows["run_checks"].task_path == "notifwatch.failures.detection.run_checks"
    assert rows["run_checks"].next_run_at == now  # due at once on the first start
    assert rows["run_checks"].enabled


def test_ensure_schedules_follows_the_code_but_keeps_admin_choices():
    ensure_schedules()
    Schedule.objects.filter(name="run_checks").update(
        interval_seconds=5, task_path="old.path", enabled=False
    )
    ensure_schedules()
    row = Schedule.objects.get(name="run_checks")
    assert (row.interval_seconds, row.task_path) == (60, "notifwatch.failures.detection.run_checks")
    assert not row.enabled


def test_due_and_not_due(make_schedule):
    now = timezone.now()
    make_schedule("later", next_run_at=now + timedelta(seconds=10), interval=60)
    make_schedule("paused", next_run_at=now - timedelta(seconds=10), enabled=False)

    assert enqueue_due(now) == []
    assert enqueue_due(now + timedelta(seconds=10)) == ["later"]
    assert enqueue_due(now + timedelta(seconds=11)) == []  # claimed: next one in 60 s

    row = Schedule.objects.get(name="later")
    assert row.next_run_at == now + timedelta(seconds=70)
    assert row.last_enqueued_at == now + timedelta(seconds=10)
    result = DBTaskResult.objects.get()
    assert str(result.pk) == row.last_result_id
    assert result.task_path == "notifwatch.worker.tasks.run_scheduled"
    assert result.args_kwargs == {"args": ["later", 1], "kwargs": {}}
    assert result.status == TaskResultStatus.READY


def test_claim_is_exclusive_for_the_same_read(make_schedule):
    make_schedule("nightly")
    now = timezone.now()
    # Two workers read the schedule in the same state, then both try to claim the tick.
    first_read = Schedule.objects.get(name="nightly")
    second_read = Schedule.objects.get(name="nightly")

    assert claim_and_enqueue(first_read, now) is True
    assert claim_and_enqueue(second_read, now) is False
    assert DBTaskResult.objects.count() == 1


def race_for_the_tick(schedule_pk: int, now) -> list[bool]:
    """Two worker threads, each with its own connection, read the schedule then claim at once."""
    barrier = threading.Barrier(2)
    outcomes = []

    def worker():
        try:
            stale_read = Schedule.objects.get(pk=schedule_pk)
            barrier.wait(timeout=10)
            outcomes.append(claim_and_enqueue(stale_read, now))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_claim_is_exclusive_across_threads(make_schedule):
    schedule = make_schedule("nightly", interval=1)
    for round_ in range(5):
        now = timezone.now() + timedelta(seconds=round_)
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=now, last_result_id="")
        assert sorted(race_for_the_tick(schedule.pk, now)) == [False, True], f"round {round_}"
    assert DBTaskResult.objects.count() == 5


def test_a_tick_waits_for_the_previous_run(make_schedule):
    make_schedule("nightly", interval=60)
    now = timezone.now()
    assert enqueue_due(now) == ["nightly"]

    # The run is still queued (slow worker) when the next tick falls due: skipped, not stacked.
    assert enqueue_due(now + timedelta(seconds=60)) == []
    assert DBTaskResult.objects.count() == 1
    assert Schedule.objects.get().next_run_at == now + timedelta(seconds=120)

    DBTaskResult.objects.update(status=TaskResultStatus.SUCCESSFUL, finished_at=now)
    assert enqueue_due(now + timedelta(seconds=120)) == ["nightly"]
    assert DBTaskResult.objects.count() == 2
