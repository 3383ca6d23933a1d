from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.worker.models import Schedule
from notifwatch.worker.scheduling import enqueue_due
from notifwatch.worker.tasks import MAX_ATTEMPTS, backoff_seconds

from .conftest import drain

# transaction=True: the worker closes connections left in a transaction (as a test's would be).
pytestmark = pytest.mark.django_db(transaction=True)


def test_backoff_doubles_and_is_capped():
    assert [backoff_seconds(n) for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert backoff_seconds(12) == 30 * 60


def pending_retry() -> DBTaskResult:
    return DBTaskResult.objects.get(status=TaskResultStatus.READY)


def test_failure_is_retried_with_backoff_then_given_up(make_schedule):
    make_schedule("flaky", task_path="tests.worker.jobs.boom")
    enqueue_due()
    drain()

    for attempt in range(1, MAX_ATTEMPTS):
        schedule = Schedule.objects.get()
        retry = pending_retry()
        assert retry.args_kwargs["args"] == ["flaky", attempt + 1]
        assert str(retry.pk) == schedule.last_result_id
        expected = schedule.last_failed_at + timedelta(seconds=backoff_seconds(attempt))
        assert abs(retry.run_after - expected) < timedelta(seconds=1)
        assert schedule.retry_at == retry.run_after
        assert schedule.last_attempt == attempt
        assert schedule.consecutive_failures == attempt
        assert schedule.last_error.startswith(f"Attempt {attempt}/{MAX_ATTEMPTS} failed; retry at")
        assert "RuntimeError: the detection database went away" in schedule.last_error

        # Not before its time, even when a tick falls due meanwhile: the tick is skipped.
        Schedule.objects.update(next_run_at=timezone.now())
        assert enqueue_due() == []
        drain()
        assert pending_retry().pk == retry.pk
        # Time passes.
        DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
        drain()

    schedule = Schedule.objects.get()
    assert schedule.last_attempt == MAX_ATTEMPTS
    assert schedule.consecutive_failures == MAX_ATTEMPTS
    assert schedule.retry_at is None
    assert schedule.last_error.startswith(f"Attempt {MAX_ATTEMPTS}/{MAX_ATTEMPTS} failed; gave up")
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.READY).exists()
    failed = DBTaskResult.objects.filter(status=TaskResultStatus.FAILED)
    assert failed.count() == MAX_ATTEMPTS
    assert {r.exception_class_path for r in failed} == {"builtins.RuntimeError"}


def test_success_clears_the_failure(make_schedule):
    make_schedule("flaky", task_path="tests.worker.jobs.boom")
    enqueue_due()
    drain()
    assert Schedule.objects.get().consecutive_failures == 1

    # Fixed (a deploy); the pending retry runs and succeeds.
    Schedule.objects.update(task_path="tests.worker.jobs.ok")
    DBTaskResult.objects.filter(status=TaskResultStatus.READY).update(run_after=timezone.now())
    drain()

    schedule = Schedule.objects.get()
    assert schedule.consecutive_failures == 0
    assert schedule.last_error == ""
    assert schedule.last_attempt == 2
    assert schedule.last_succeeded_at is not None
    result = DBTaskResult.objects.get(pk=schedule.last_result_id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["ok"] is True


def test_the_failure_shows_in_the_admin(make_schedule, client, django_user_model):
    make_schedule("flaky", task_path="tests.worker.jobs.boom")
    enqueue_due()
    drain()
    schedule = Schedule.objects.get()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root"))

    listing = client.get(reverse("admin:worker_schedule_changelist")).content.decode()
    assert "failing: attempt 2/5 at" in listing
    assert ">Ready</a>" in listing  # the latest run (the pending retry), linked to its result

    detail = client.get(reverse("admin:worker_schedule_change", args=[schedule.pk]))
    assert "RuntimeError: the detection database went away" in detail.content.decode()

    # "Run now" makes it due at the next scheduler look.
    client.post(
        reverse("admin:worker_schedule_changelist"),
        {"action": "run_now", "_selected_action": [schedule.pk]},
    )
    assert Schedule.objects.get().next_run_at <= timezone.now()
