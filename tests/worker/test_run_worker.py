import os
import signal
import threading
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.management.commands.run_worker import run_through_outages
from notifwatch.worker.models import Schedule, WorkerHeartbeat
from notifwatch.worker.scheduling import REGISTRY


@pytest.fixture
def registry_rows():
    """The real schedules as a first start creates them, with run_checks paused: the detection
    pass is tested on its own; here the machinery runs a job of the tests and the real sweep."""
    now = timezone.now()
    Schedule.objects.create(
        name="run_checks",
        task_path="notifwatch.failures.detection.run_checks",
        interval_seconds=60,
        next_run_at=now,
        enabled=False,
    )
    Schedule.objects.create(
        name="test_job", task_path="tests.worker.jobs.ok", interval_seconds=60, next_run_at=now
    )


def assert_runs_landed():
    rows = {s.name: s for s in Schedule.objects.all()}
    # Every registered job's schedule is created at start, whichever apps add jobs.
    assert set(rows) == {job.name for job in REGISTRY} | {"test_job"}
    # The tick said the worker is alive.
    assert WorkerHeartbeat.objects.exists()
    for name in ("test_job", "sweep_stale_tasks"):
        result = DBTaskResult.objects.get(pk=rows[name].last_result_id)
        assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
        assert rows[name].last_succeeded_at is not None
    assert DBTaskResult.objects.get(pk=rows["test_job"].last_result_id).return_value["ok"] is True
    assert DBTaskResult.objects.get(pk=rows["sweep_stale_tasks"].last_result_id).return_value == {
        "requeued": 0,
        "failed": 0,
    }
    assert rows["run_checks"].last_result_id == ""


@pytest.mark.django_db(transaction=True)
def test_once_runs_one_tick_end_to_end(registry_rows):
    sigterm_before = signal.getsignal(signal.SIGTERM)
    call_command("run_worker", "--once", verbosity=0)
    assert_runs_landed()
    assert signal.getsignal(signal.SIGTERM) is sigterm_before


class Timeout(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_scheduler_thread_runs_jobs_and_sigterm_stops_the_worker(registry_rows):
    """The long-running form: the scheduler thread enqueues, the worker runs, SIGTERM stops it."""

    def stop_when_done():
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                # Both runs done and their enqueueing transactions committed.
                done = Schedule.objects.filter(
                    name__in=["test_job", "sweep_stale_tasks"], last_succeeded_at__isnull=False
                ).exclude(last_result_id="")
                if done.count() == 2:
                    break
                time.sleep(0.05)
        finally:
            connection.close()
            os.kill(os.getpid(), signal.SIGTERM)

    def give_up(signum, frame):
        raise Timeout("run_worker did not stop")

    previous_alarm = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(30)
    watcher = threading.Thread(target=stop_when_done)
    watcher.start()
    try:
        # Idle when the signal comes: the worker exits at once (SystemExit 0); busy: after its task.
        try:
            call_command(
                "run_worker",
                "--interval=0.05",
                "--schedule-interval=0.05",
                "--no-startup-delay",
                verbosity=0,
            )
        except SystemExit as exc:
            assert exc.code == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_alarm)
        watcher.join()
    assert_runs_landed()


class WorkerThroughAnOutage(Worker):
    """The real worker, whose database is away for its first `outages` looks at the queue."""

    def __init__(self, outages: int):
        super().__init__(
            queue_names=["default"],
            interval=0,
            batch=True,  # runs what is ready, then returns
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=f"outage-{outages}",
            excluded_queue_names=[],
        )
        self.outages = outages

    def run(self) -> None:
        if self.outages:
            self.outages -= 1
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        super().run()


@pytest.mark.django_db(transaction=True)
def test_the_worker_waits_out_a_database_outage_and_runs_what_is_queued(registry_rows):
    from notifwatch.worker.tasks import run_scheduled

    result = run_scheduled.enqueue("test_job")
    worker = WorkerThroughAnOutage(2)

    run_through_outages(worker, first_pause=0.01)

    assert worker.outages == 0
    assert DBTaskResult.objects.get(pk=result.id).status == TaskResultStatus.SUCCESSFUL


def test_a_worker_told_to_stop_does_not_wait_out_an_outage():
    worker = WorkerThroughAnOutage(1)
    worker.running = False

    with pytest.raises(OperationalError):
        run_through_outages(worker, first_pause=0.01)
