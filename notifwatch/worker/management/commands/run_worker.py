"""`manage.py run_worker`: django-tasks-db's worker plus the scheduler, in one process.

The worker loop (django-tasks-db's `Worker`) runs in the main thread and handles SIGINT/SIGTERM:
it finishes the task it is running, then exits. A scheduler thread creates the missing schedules
once, then enqueues the due ticks every `--schedule-interval` seconds. Run as many of these as
you like, on as many machines: each tick is claimed by one of them. Never autoreloads.
"""

import logging
import signal
import threading
import time
from argparse import ArgumentParser

from django.core.management.base import BaseCommand
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import (
    Command as DbWorkerCommand,
)
from django_tasks_db.management.commands.db_worker import (
    Worker,
    valid_backend_name,
    valid_interval,
    valid_max_tasks,
    validate_worker_id,
)

from notifwatch.worker.heartbeats import forget_gone_workers, record_heartbeat
from notifwatch.worker.scheduling import enqueue_due, ensure_schedules

logger = logging.getLogger("notifwatch.worker")


class Scheduler:
    def __init__(self, interval: float, worker_id: str):
        self.interval = interval
        self.worker_id = worker_id
        self.stopping = threading.Event()

    def tick(self) -> list[str]:
        # The heartbeat first: a tick whose scheduling fails still shows the worker alive.
        record_heartbeat(self.worker_id)
        return enqueue_due()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    self.tick()
                except Exception:
                    # A database hiccup must not end scheduling; the next tick tries again.
                    logger.exception("Scheduler tick failed")
                self.stopping.wait(self.interval)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()


def run_through_outages(worker: Worker, *, first_pause: float = 1.0, longest: float = 30) -> None:
    """django-tasks-db's loop raises when the database goes away (claiming a task, recording a
    result). The worker waits and carries on, as the web side answers 503 and carries on: a
    task caught mid-way is still `running` and the stale-task sweep queues it again."""
    pause = first_pause
    while True:
        try:
            worker.run()
            return
        except (OperationalError, InterfaceError):
            if not worker.running:
                raise
            logger.exception("Database unavailable; the worker tries again in %.0f s", pause)
            connections.close_all()
            time.sleep(pause)
            pause = min(pause * 2, longest)


class Command(BaseCommand):
    help = "Run the background worker with the periodic-job scheduler (see README)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--interval",
            type=valid_interval,
            default=1.0,
            help="Seconds to wait for a task when the queue is empty (default: %(default)s).",
        )
        parser.add_argument(
            "--schedule-interval",
            type=valid_interval,
            default=5.0,
            help="Seconds between two looks for due schedules (default: %(default)s).",
        )
        parser.add_argument(
            "--queue-name",
            default="default",
            help="Queues to process, comma-separated; '*' for all (default: %(default)s).",
        )
        parser.add_argument("--backend", default="default", type=valid_backend_name)
        parser.add_argument(
            "--worker-id",
            type=validate_worker_id,
            default=None,
            help="Unique across the worker pool (default: random).",
        )
        parser.add_argument(
            "--max-tasks",
            type=valid_max_tasks,
            default=None,
            help="Exit after running this many tasks.",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Enqueue the due schedules once, run every ready task, then exit.",
        )
        parser.add_argument(
            "--no-startup-delay",
            action="store_false",
            dest="startup_delay",
            help="Don't wait up to a second at start (spreads out workers started together).",
        )

    def handle(self, *args, **options) -> None:
        # django-tasks-db's own log setup for its worker, at this command's verbosity.
        DbWorkerCommand(stdout=self.stdout, stderr=self.stderr).configure_logging(
            options["verbosity"]
        )
        worker_id = options["worker_id"] or get_random_string(32)
        worker = Worker(
            queue_names=options["queue_name"].split(","),
            interval=options["interval"],
            batch=options["once"],
            backend_name=options["backend"],
            startup_delay=options["startup_delay"] and not options["once"],
            max_tasks=options["max_tasks"],
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        scheduler = Scheduler(options["schedule_interval"], worker_id)
        ensure_schedules()
        forget_gone_workers()

        previous_handlers = {
            sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
        }
        worker.configure_signals()
        thread = None
        try:
            if options["once"]:
                scheduler.tick()
            else:
                thread = threading.Thread(target=scheduler.run, name="scheduler", daemon=True)
                thread.start()
            run_through_outages(worker)
        finally:
            scheduler.stop()
            if thread is not None:
                thread.join(timeout=30)
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
