"""Reprocessing a source's quarantined raw events: past rows that raise, in audited chunks."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.ingest import actions
from notifwatch.ingest.actions import reprocess_quarantined, run_result, save_source, set_mapping
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw
from notifwatch.ingest.tasks import reprocess_source
from notifwatch.worker.scheduling import sweep_stale_tasks
from tests.worker.conftest import drain
from tests.worker.refusals import MESSAGE, database_refusing_new_notifications

# The sender wrote `ts`; this mapping expects `timestamp`, so every event is quarantined.
WRONG_MAPPING = {
    "fields": {
        "event_id": "event_id",
        "occurred_at": "timestamp",
        "notification_key": "key",
        "channel": "channel",
        "status": "status",
        "recipient": "to",
    }
}
FIXED_MAPPING = {"fields": WRONG_MAPPING["fields"] | {"occurred_at": "ts"}}


def line(key: str, status: str = "delivered") -> dict:
    return {
        "event_id": f"{key}:{status}",
        "ts": "2026-11-30T10:00:00Z",
        "key": key,
        "channel": "email",
        "status": status,
        "to": f"{key}@example.com",
    }


@pytest.fixture
def source(db) -> Source:
    return save_source(slug="shop", kind="json", name="Shop", mapping=WRONG_MAPPING).source


def quarantined(source: Source, *records: dict) -> list[RawEvent]:
    raws = [
        process_raw_event(store_raw(source, Transport.API, json.dumps(r).encode())) for r in records
    ]
    assert {r.outcome for r in raws} == {Outcome.QUARANTINED}
    return raws


class Killed(BaseException):
    """Stands for SIGKILL: not an error the run may catch; its open transaction is lost."""


def killed_after(monkeypatch, calls: int) -> None:
    """The process dies on the `calls`+1-th raw event it processes."""
    seen = []

    def process_then_die(raw):
        if len(seen) == calls:
            raise Killed
        seen.append(raw.pk)
        return process_raw_event(raw)

    monkeypatch.setattr(actions, "process_raw_event", process_then_die)


def reprocessed_entries(source: Source):
    return AuditEntry.objects.filter(
        action="source.reprocessed", target_id=str(source.pk)
    ).order_by("id")


def test_it_goes_past_rows_that_raise_and_reports_fixed_left_and_failed(source):
    good = quarantined(source, *(line(f"ok-{n}") for n in range(5)))
    still_bad = quarantined(source, line("odd-1", status="exploded"), line("odd-2", "melted"))
    crashing = quarantined(source, line("crash-1"), line("crash-2"))
    reasons = {raw.pk: raw.reason for raw in crashing}
    set_mapping(source, FIXED_MAPPING)
    out = StringIO()

    with database_refusing_new_notifications(key_prefix="crash"):
        with pytest.raises(CommandError, match="2 raw events failed with an error"):
            call_command("reprocess", "shop", stdout=out)

    assert (
        "shop: reprocessed 9 (parsed 5, quarantined 2): 5 fixed, 2 still quarantined, 2 failed"
        in (out.getvalue())
    )
    for raw in good:
        raw.refresh_from_db()
        assert raw.outcome == Outcome.PARSED
    for raw in still_bad:
        raw.refresh_from_db()
        assert raw.outcome == Outcome.QUARANTINED
        assert "status" in raw.reason  # the reason of this try, not the mapping's old one
    for raw in crashing:
        raw.refresh_from_db()
        assert raw.outcome == Outcome.QUARANTINED
        assert raw.reason == reasons[raw.pk]  # as it was
        assert MESSAGE in raw.last_error
    assert Notification.objects.count() == 5
    (entry,) = reprocessed_entries(source)
    assert entry.actor_label == "manage.py reprocess"
    assert {k: entry.new[k] for k in ("attempted", "fixed", "left", "failed", "done")} == {
        "attempted": 9,
        "fixed": 5,
        "left": 2,
        "failed": 2,
        "done": True,
    }
    assert [e["raw_event"] for e in entry.new["errors"]] == [r.pk for r in crashing]
    assert MESSAGE in entry.new["errors"][0]["error"]
    assert "5 fixed, 2 still quarantined, 2 failed" in entry.detail


def test_the_task_reports_the_counts_and_ends_successful(source, settings):
    quarantined(source, line("ok-1"), line("crash-1"))
    set_mapping(source, FIXED_MAPPING)

    with database_refusing_new_notifications(key_prefix="crash"):
        result = reprocess_source.enqueue(source.pk)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["fixed"] == 1
    assert result.return_value["failed"] == 1
    assert result.return_value["left"] == 0


def test_a_killed_run_keeps_the_audit_of_its_chunks_and_continues_exactly_once(source, monkeypatch):
    raws = quarantined(source, *(line(f"ok-{n}") for n in range(25)))
    set_mapping(source, FIXED_MAPPING)
    killed_after(monkeypatch, 13)

    with pytest.raises(Killed):
        reprocess_quarantined(source, actor_label="manage.py reprocess", chunk_size=5)

    # Two chunks committed with their entries; the third died with its transaction.
    entries = list(reprocessed_entries(source))
    assert [(e.new["chunk"], e.new["attempted"], e.new["done"]) for e in entries] == [
        (1, 5, False),
        (2, 5, False),
    ]
    assert entries[1].new["to_id"] == raws[9].pk
    assert RawEvent.objects.filter(source=source, outcome=Outcome.PARSED).count() == 10

    # Restarted by hand: it continues that run after its last committed chunk.
    monkeypatch.undo()
    out = StringIO()
    call_command("reprocess", "shop", stdout=out)

    run = entries[0].new["run"]
    assert (
        f"shop: reprocessed 25 (parsed 25): 25 fixed, 0 still quarantined, 0 failed "
        f"(continued run {run}, stopped after raw event #{raws[9].pk})"
    ) in out.getvalue()
    entries = list(reprocessed_entries(source))
    assert {e.new["run"] for e in entries} == {run}
    assert [e.new["chunk"] for e in entries] == [1, 2, 3]
    assert entries[-1].new["from_id"] == raws[10].pk
    assert entries[-1].new["done"]
    assert run_result(source, run).attempted == 25  # every row once
    assert Notification.objects.count() == 25
    assert set(RawEvent.objects.values_list("outcome", flat=True)) == {Outcome.PARSED}


@pytest.mark.django_db(transaction=True)
def test_a_task_rerun_after_its_worker_died_continues_its_own_run(monkeypatch, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    source = save_source(slug="shop", kind="json", name="Shop", mapping=WRONG_MAPPING).source
    raws = quarantined(source, *(line(f"ok-{n}") for n in range(8)))
    set_mapping(source, FIXED_MAPPING)
    task = reprocess_source.enqueue(source.pk)
    # A worker claims it and gets three rows into its second chunk of 5, then is SIGKILLed.
    DBTaskResult.objects.filter(pk=task.id).update(
        status=TaskResultStatus.RUNNING,
        started_at=timezone.now() - timedelta(hours=1),
        worker_ids=["dead"],
    )
    killed_after(monkeypatch, 7)
    with pytest.raises(Killed):
        reprocess_quarantined(source, run=f"task-{task.id}", chunk_size=5)
    monkeypatch.undo()
    assert reprocessed_entries(source).count() == 1

    assert sweep_stale_tasks() == {"requeued": 1, "failed": 0}
    drain()

    task = DBTaskResult.objects.get(pk=task.id)
    assert task.status == TaskResultStatus.SUCCESSFUL, task.traceback
    assert task.return_value["attempted"] == 8
    assert task.return_value["fixed"] == 8
    chunks = [e.new for e in reprocessed_entries(source)]
    assert [(c["from_id"], c["to_id"]) for c in chunks] == [
        (raws[0].pk, raws[4].pk),
        (raws[5].pk, raws[7].pk),
    ]
    assert Notification.objects.count() == 8
