"""The worker's retry of raw events a crash left `received` (ingest.tasks), and what it shows."""

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.deliveries.overview import build_overview
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.processing import store_raw
from notifwatch.ingest.tasks import retry_backoff_seconds, retry_unprocessed_raw_events
from notifwatch.worker.models import Schedule
from notifwatch.worker.scheduling import enqueue_due, ensure_schedules

from .conftest import drain
from .refusals import MESSAGE, database_refusing_new_notifications


def event(key: str) -> dict:
    return {
        "event_id": f"{key}:delivered",
        "occurred_at": "2026-11-30T10:00:00Z",
        "notification_key": key,
        "channel": "email",
        "purpose": "order_confirmation",
        "status": "delivered",
        "customer_id": "C-77",
        "recipient": "pat@example.com",
    }


def post_during_a_crash(client, source: Source, key: str) -> RawEvent:
    """Post an event through the API while the database refuses new notifications."""
    with database_refusing_new_notifications():
        response = client.post(
            reverse("api_events"),
            json.dumps(event(key)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {source.token}",
        )
    assert response.status_code == 202  # stored: the sender must not resend it
    return RawEvent.objects.get(pk=response.json()["stored"])


def left_received(source: Source, key: str, ago: timedelta = timedelta(minutes=2)) -> RawEvent:
    """A raw event its request stored, then crashed on, `ago` earlier."""
    raw = store_raw(source, Transport.API, json.dumps(event(key)).encode())
    RawEvent.objects.filter(pk=raw.pk).update(received_at=timezone.now() - ago)
    return raw


def time_passes() -> None:
    RawEvent.objects.filter(outcome=Outcome.RECEIVED).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_it_processes_what_a_crash_left_received(client, json_source):
    raw = post_during_a_crash(client, json_source, "ord-1")
    assert raw.outcome == Outcome.RECEIVED
    assert not Notification.objects.exists()

    # The request may still be processing it during the grace period: left alone.
    assert retry_unprocessed_raw_events()["processed"] == 0
    RawEvent.objects.filter(pk=raw.pk).update(received_at=timezone.now() - timedelta(minutes=2))

    assert retry_unprocessed_raw_events() == {
        "processed": 1,
        "failed_again": 0,
        "gave_up": 0,
        "taken_by_another": 0,
    }
    raw.refresh_from_db()
    assert raw.outcome == Outcome.PARSED
    assert raw.attempts == 1
    assert Notification.objects.get().final_status == "delivered"
    assert retry_unprocessed_raw_events()["processed"] == 0  # once


@pytest.mark.django_db
def test_it_retries_with_backoff_then_gives_up_visibly(client, json_source, admin_user, settings):
    settings.NOTIFWATCH_RAW_RETRY_ATTEMPTS = 3
    raw = left_received(json_source, "ord-2")

    with database_refusing_new_notifications():
        for attempt in (1, 2):
            claimed_at = timezone.now()
            assert retry_unprocessed_raw_events()["failed_again"] == 1
            raw.refresh_from_db()
            assert raw.outcome == Outcome.RECEIVED
            assert raw.attempts == attempt
            assert MESSAGE in raw.last_error
            expected = claimed_at + timedelta(seconds=retry_backoff_seconds(attempt))
            assert abs(raw.next_attempt_at - expected) < timedelta(seconds=2)
            # Not before its time.
            assert retry_unprocessed_raw_events() == dict.fromkeys(
                ["processed", "failed_again", "gave_up", "taken_by_another"], 0
            )
            time_passes()

        assert retry_unprocessed_raw_events()["gave_up"] == 1

    raw.refresh_from_db()
    assert raw.outcome == Outcome.FAILED
    assert raw.attempts == 3
    assert raw.next_attempt_at is None
    assert raw.reason.startswith("could not be processed after 3 attempts (")
    assert MESSAGE in raw.reason
    entry = AuditEntry.objects.get(action="raw_event.failed")
    assert entry.actor_label == "worker"
    assert entry.new["attempts"] == 3
    assert retry_unprocessed_raw_events()["gave_up"] == 0  # given up once, then left alone

    # Counted where people look: the source page, the sources list and the overview.
    client.force_login(admin_user)
    page = client.get(reverse("source_detail", args=[json_source.slug])).content.decode()
    assert "could not be processed — an error on each of 3 tries" in page
    assert "Could not be processed</h3>" in page
    assert reverse("raw_event_detail", args=[raw.pk]) in page
    listing = client.get(reverse("source_list")).content.decode()
    assert "1 raw event could not be processed" in listing
    (line,) = build_overview().unprocessed
    assert line.text == "Billing sender: 1 raw event could not be processed (an error on every try)"
    home = client.get(reverse("home")).content.decode()
    assert line.text in home
    assert "Reprocess the ones that could not be processed" in home
    raw_page = client.get(reverse("raw_event_detail", args=[raw.pk])).content.decode()
    assert "Last processing error" in raw_page
    assert "3 of 3" in raw_page

    # The cause is fixed (the trigger is gone): reprocessing by hand records it.
    call_command("reprocess", json_source.slug, stdout=open("/dev/null", "w"))
    raw.refresh_from_db()
    assert raw.outcome == Outcome.PARSED
    assert Notification.objects.get().final_status == "delivered"
    assert build_overview().unprocessed == []


@pytest.mark.django_db
def test_a_row_whose_last_attempt_never_reported_back_is_given_up(json_source, settings):
    """The worker was killed while on the last attempt: no 6th try, but a visible failure."""
    raw = left_received(json_source, "ord-3")
    limit = settings.NOTIFWATCH_RAW_RETRY_ATTEMPTS
    RawEvent.objects.filter(pk=raw.pk).update(attempts=limit, next_attempt_at=timezone.now())

    assert retry_unprocessed_raw_events()["gave_up"] == 1

    raw.refresh_from_db()
    assert raw.outcome == Outcome.FAILED
    assert "the worker stopped while on it" in raw.reason
    assert not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_runs_as_a_scheduled_job_of_the_worker(json_source):
    left_received(json_source, "ord-6")
    ensure_schedules()
    Schedule.objects.exclude(name="retry_raw_events").update(enabled=False)

    assert enqueue_due() == ["retry_raw_events"]
    drain()

    result = DBTaskResult.objects.get(
        pk=Schedule.objects.get(name="retry_raw_events").last_result_id
    )
    assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
    assert result.return_value["processed"] == 1
    assert RawEvent.objects.get().outcome == Outcome.PARSED


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_process_each_row_once(json_source):
    raws = [left_received(json_source, f"ord-{n}") for n in range(30)]
    start = threading.Barrier(2)
    totals = []

    def worker():
        try:
            start.wait()
            totals.append(retry_unprocessed_raw_events())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(t["processed"] for t in totals) == 30
    outcomes = RawEvent.objects.filter(pk__in=[r.pk for r in raws])
    # Processed twice, a row would say `duplicate` and have two attempts.
    assert set(outcomes.values_list("outcome", flat=True)) == {Outcome.PARSED}
    assert set(outcomes.values_list("attempts", flat=True)) == {1}
    assert Notification.objects.count() == 30
