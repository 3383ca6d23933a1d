import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.models import Schedule
from notifwatch.worker.scheduling import MAX_CLAIMS, enqueue_due, sweep_stale_tasks

from .conftest import drain

# transaction=True: the worker closes connections left in a transaction (as a test's would be).
pytestmark = pytest.mark.django_db(transaction=True)


def claimed_run(name: str, started_ago: timedelta, worker_ids: list[str]) -> DBTaskResult:
    """A run that a worker claimed `started_ago` and never finished."""
    Schedule.objects.create(
        name=name, task_path="tests.worker.jobs.ok", interval_seconds=60, next_run_at=timezone.now()
    )
    enqueue_due()
    result = DBTaskResult.objects.get(pk=Schedule.objects.get(name=name).last_result_id)
    DBTaskResult.objects.filter(pk=result.pk).update(
        status=TaskResultStatus.RUNNING,
        started_at=timezone.now() - started_ago,
        worker_ids=worker_ids,
    )
    return result


def test_sweep_requeues_a_dead_workers_task_and_leaves_a_fresh_one():
    dead = claimed_run("dead", timedelta(minutes=16), ["killed-worker"])
    busy = claimed_run("busy", timedelta(minutes=1), ["live-worker"])

    assert sweep_stale_tasks(timeout=15 * 60) == {"requeued": 1, "failed": 0}
    assert sweep_stale_tasks(timeout=15 * 60) == {"requeued": 0, "failed": 0}  # once only

    dead.refresh_from_db()
    busy.refresh_from_db()
    assert dead.status == TaskResultStatus.READY
    assert busy.status == TaskResultStatus.RUNNING

    # Another worker picks it up and runs it to the end.
    drain("second-worker")
    dead.refresh_from_db()
    assert dead.status == TaskResultStatus.SUCCESSFUL
    assert dead.worker_ids == ["killed-worker", "second-worker"]
    assert Schedule.objects.get(name="dead").last_succeeded_at is not None


def test_sweep_gives_up_on_a_task_that_kills_its_workers():
    poison = claimed_run("poison", timedelta(hours=1), [f"w{n}" for n in range(MAX_CLAIMS)])

    assert sweep_stale_tasks(timeout=15 * 60) == {"requeued": 0, "failed": 1}
    poison.refresh_from_db()
    assert poison.status == TaskResultStatus.FAILED
    assert poison.exception_class_path == "notifwatch.worker.scheduling.StaleTask"
    assert "3 workers died" in poison.traceback


def test_a_stale_run_does_not_block_its_schedule():
    claimed_run("dead", timedelta(minutes=16), ["killed-worker"])
    Schedule.objects.update(next_run_at=timezone.now())
    assert enqueue_due() == ["dead"]  # the sweep deals with the old run


def test_a_short_stale_timeout_from_the_settings_requeues_a_dead_workers_task(settings):
    settings.NOTIFWATCH_STALE_TASK_SECONDS = 5
    dead = claimed_run("dead", timedelta(seconds=10), ["killed-worker"])
    busy = claimed_run("busy", timedelta(seconds=1), ["live-worker"])

    # As the scheduled sweep calls it: no timeout given, the setting decides.
    assert sweep_stale_tasks() == {"requeued": 1, "failed": 0}

    dead.refresh_from_db()
    busy.refresh_from_db()
    assert dead.status == TaskResultStatus.READY
    assert busy.status == TaskResultStatus.RUNNING


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (None, 15 * 60)])
def test_the_stale_timeout_is_read_from_the_environment(value, expected):
    env = {k: v for k, v in os.environ.items() if k != "NOTIFWATCH_STALE_TASK_SECONDS"}
    if value is not None:
        env["NOTIFWATCH_STALE_TASK_SECONDS"] = value
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from notifwatch import settings; print(settings.NOTIFWATCH_STALE_TASK_SECONDS)",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[2],  # the project, where `notifwatch` imports from
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip() == str(expected)
