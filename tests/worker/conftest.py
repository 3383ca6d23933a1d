import pytest
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker

from notifwatch.worker.models import Schedule


@pytest.fixture(autouse=True)
def db_task_backend(settings):
    # The suite runs tasks immediately (tests/runenv.py); here the database is the queue.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.fixture
def make_schedule():
    def make(name="nightly", task_path="tests.worker.jobs.ok", interval=60, **fields):
        fields.setdefault("next_run_at", timezone.now())
        return Schedule.objects.create(
            name=name, task_path=task_path, interval_seconds=interval, **fields
        )

    return make


def drain(worker_id: str = "test-worker") -> None:
    """Run every ready task with django-tasks-db's own worker, then return."""
    Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    ).run()
