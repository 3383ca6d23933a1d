"""Kill check: SIGKILL in the middle of an import, a reprocess, a detection pass and a bulk
change; each must finish exactly once after a restart.

`python -m bench.reliability kill [--quick]` runs on a private PostgreSQL cluster (its own port,
never the shared server) with `manage.py run_worker` as production runs it and
NOTIFWATCH_STALE_TASK_SECONDS=5, so a task whose worker died is queued again by the stale-task
sweep (a scheduled job, every minute) about a minute later instead of 15. Four scenarios, each
bounded in time:

1. import: `manage.py import_events` of a generated JSON-lines file, SIGKILLed once some batches
   are committed, then run again to the end: every line stored once, every event recorded once,
   each notification's event counter equal to its events.
2. reprocess: quarantined raw events (a field renamed upstream), the mapping fixed, the reprocess
   task (the source page's button) started in the worker, the worker SIGKILLed part-way and
   started again: every quarantined row parsed once, no event counted twice, and the
   `source.reprocessed` audit entries add up to exactly the rows fixed.
3. detection: the worker's `run_checks` schedule run now over thousands of failures, the worker
   SIGKILLed while the pass is adding occurrences, started again: each failure counted once in
   one exception, each exception's stored `occurrences` equal to its occurrence rows.
4. bulk: a bulk change of more than 2,000 exceptions (which the web page hands to the worker),
   the worker SIGKILLed part-way and started again: each exception changed once, with one
   history row and one audit entry each, and one audit entry for the bulk change as a whole.

Only processes this check started are killed, each by its pid. It prints the timings and
totals, and exits non-zero on any mismatch (or when a kill came too late to test anything).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.reliability.cluster import PrivateCluster
from bench.reliability.server import Worker, server_env
from bench.scratch import setup_django

ROOT = Path(__file__).resolve().parents[2]
STALE_TASK_SECONDS = 5
ERROR_CODES = ("550 5.1.1", "552 5.2.2", "554 5.7.1", "421 4.7.0", "550 5.7.26")
PURPOSES = 40


@dataclass(frozen=True)
class Sizes:
    import_events: int
    reprocess_rows: int
    bulk_exceptions: int


QUICK = Sizes(import_events=20_000, reprocess_rows=3_000, bulk_exceptions=2_100)
FULL = Sizes(import_events=100_000, reprocess_rows=10_000, bulk_exceptions=5_000)


@dataclass
class Scenario:
    name: str
    problems: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def expect(self, what: str, got, expected) -> None:
        """Record a figure; a mismatch is a problem."""
        if got == expected:
            self.figures.append(f"{what}: {got}")
        else:
            self.problems.append(f"{what}: {got}, expected {expected}")

    def note(self, text: str) -> None:
        self.figures.append(text)


class TooLate(Exception):
    """The run finished before the kill: nothing was interrupted, so nothing was tested."""


def wait_until(test: Callable[[], object], timeout: float, interval: float = 0.05, what=""):
    """The first truthy value of `test()`; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = test()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def canonical_line(i: int, now: datetime, status_field: str = "status") -> dict:
    """Event i: notification i // 2 is sent, then delivered, or bounced one time in four."""
    n = i // 2
    second = i % 2 == 1
    bounced = n % 4 == 0
    status = ("bounced" if bounced else "delivered") if second else "sent"
    event = {
        "event_id": f"e-{i}",
        "occurred_at": (now - timedelta(seconds=(50_000 - n % 50_000) + (1 if second else 0)))
        .isoformat()
        .replace("+00:00", "Z"),
        "notification_key": f"n-{n}",
        "channel": "email",
        "purpose": f"purpose_{n % PURPOSES}",
        status_field: status,
        "customer_id": f"C-{n % 997}",
        "recipient": f"person{n}@example.com",
    }
    if second and bounced:
        event["error_code"] = ERROR_CODES[n % len(ERROR_CODES)]
        event["error_message"] = "mailbox unavailable"
    return event


def write_lines(path: Path, count: int, now: datetime, status_field: str = "status") -> None:
    with open(path, "w") as out:
        for i in range(count):
            out.write(json.dumps(canonical_line(i, now, status_field)) + "\n")


def event_totals(source) -> dict[str, int]:
    from django.db.models import Count, F, Sum

    from notifwatch.deliveries.models import DeliveryEvent, Notification
    from notifwatch.ingest.models import RawEvent

    notifications = Notification.objects.filter(source=source)
    counted = notifications.annotate(rows=Count("events")).exclude(event_count=F("rows"))
    sums = DeliveryEvent.objects.filter(source=source).aggregate(dup=Sum("duplicate_count"))
    return {
        "raw": RawEvent.objects.filter(source=source).count(),
        "events": DeliveryEvent.objects.filter(source=source).count(),
        "distinct_event_ids": DeliveryEvent.objects.filter(source=source)
        .values("event_id")
        .distinct()
        .count(),
        "notifications": notifications.count(),
        "miscounted": counted.count(),
        "duplicates": sums["dup"] or 0,
    }


# ---------------------------------------------------------------------------------------------
# The scenarios
# ---------------------------------------------------------------------------------------------


def import_scenario(env: dict, work: Path, sizes: Sizes, timeout: float) -> Scenario:
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.models import RawEvent

    scenario = Scenario("import")
    source = save_source(slug="kill-import", kind="json", actor_label="bench.reliability").source
    path = work / "kill-import.jsonl"
    write_lines(path, sizes.import_events, datetime.now(UTC))
    command = [
        sys.executable,
        "manage.py",
        "import_events",
        source.slug,
        str(path),
        "--batch-size",
        "500",
    ]
    started = time.monotonic()
    with open(work / "import-1.log", "wb") as log:
        first = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stored = RawEvent.objects.filter(source=source)
    try:
        wait_until(
            lambda: stored.count() >= sizes.import_events // 3 or first.poll() is not None,
            timeout,
            what="a third of the import",
        )
        if first.poll() is not None:
            raise TooLate(f"the import ended (status {first.returncode}) before the kill")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    at_kill = stored.count()
    scenario.note(
        f"import SIGKILLed after {time.monotonic() - started:.1f} s with {at_kill} of "
        f"{sizes.import_events} lines stored"
    )
    if at_kill >= sizes.import_events:
        raise TooLate("every line was stored before the kill")
    again = time.monotonic()
    second = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    scenario.note(
        f"run again: exit {second.returncode} in {time.monotonic() - again:.1f} s: "
        f"{second.stdout.strip().splitlines()[-1] if second.stdout.strip() else second.stderr[-300:]}"
    )
    if second.returncode != 0:
        scenario.problems.append(f"the second import exited {second.returncode}")
    totals = event_totals(source)
    n = sizes.import_events
    scenario.expect("raw rows (one per line)", totals["raw"], n)
    scenario.expect("delivery events", totals["events"], n)
    scenario.expect("distinct event ids", totals["distinct_event_ids"], n)
    scenario.expect("notifications", totals["notifications"], (n + 1) // 2)
    scenario.expect(
        "notifications whose event count differs from their events", totals["miscounted"], 0
    )
    scenario.expect("duplicate counters", totals["duplicates"], 0)
    return scenario


def reprocess_scenario(worker: Worker, work: Path, sizes: Sizes, timeout: float) -> Scenario:
    from django.db.models import Q
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from notifwatch.audit.models import AuditEntry
    from notifwatch.ingest.actions import save_source, set_mapping
    from notifwatch.ingest.importer import import_path
    from notifwatch.ingest.models import Outcome, RawEvent
    from notifwatch.ingest.tasks import reprocess_source

    scenario = Scenario("reprocess")
    m = sizes.reprocess_rows
    source = save_source(slug="kill-reprocess", kind="json", actor_label="bench.reliability").source
    path = work / "kill-reprocess.jsonl"
    # The sender renamed `status` to `state`: every line is quarantined.
    write_lines(path, m, datetime.now(UTC), status_field="state")
    import_path(source, str(path))
    raws = RawEvent.objects.filter(source=source)
    scenario.expect(
        "quarantined before the fix", raws.filter(outcome=Outcome.QUARANTINED).count(), m
    )
    # The admin fixes the mapping: every field where it is, `status` read from `state`.
    fields = {name: name for name in canonical_line(1, datetime.now(UTC)) if name != "status"}
    set_mapping(source, {"fields": fields | {"status": "state"}}, actor_label="bench.reliability")
    started = time.monotonic()
    result = reprocess_source.enqueue(source.pk, None)
    task = DBTaskResult.objects.filter(pk=result.id)
    fixed = raws.filter(outcome=Outcome.PARSED)
    try:
        wait_until(
            lambda: fixed.count() >= 1 or task.filter(status=TaskResultStatus.SUCCESSFUL).exists(),
            timeout,
            what="the reprocess task to fix its first rows",
        )
        # Some chunks committed, and the task well on its way: kill it now.
        wait_until(
            lambda: (
                fixed.count() >= min(m // 4, 400)
                or task.exclude(status=TaskResultStatus.RUNNING)
                .exclude(status=TaskResultStatus.READY)
                .exists()
            ),
            timeout,
            interval=0.02,
            what="a quarter of the rows",
        )
    finally:
        worker.kill()
    at_kill = fixed.count()
    scenario.note(
        f"worker SIGKILLed {time.monotonic() - started:.1f} s into the reprocess, {at_kill} of "
        f"{m} rows fixed"
    )
    if at_kill >= m or task.filter(status=TaskResultStatus.SUCCESSFUL).exists():
        raise TooLate("the reprocess finished before the kill")
    status, took = restart_until_finished(
        worker, task, timeout, "the reprocess task to finish after the restart"
    )
    scenario.note(
        f"task {status.lower()} {took:.1f} s after the restart "
        f"(stale after {STALE_TASK_SECONDS} s, then the sweep's next minute)"
    )
    scenario.expect("reprocess task", status, TaskResultStatus.SUCCESSFUL)
    scenario.expect("rows parsed", fixed.count(), m)
    scenario.expect(
        "rows still quarantined or failed",
        raws.filter(~Q(outcome=Outcome.PARSED)).count(),
        0,
    )
    totals = event_totals(source)
    scenario.expect("delivery events", totals["events"], m)
    scenario.expect("notifications", totals["notifications"], (m + 1) // 2)
    scenario.expect(
        "notifications whose event count differs from their events", totals["miscounted"], 0
    )
    scenario.expect("duplicate counters", totals["duplicates"], 0)
    entries = AuditEntry.objects.filter(
        action="source.reprocessed", target_type="ingest.source", target_id=str(source.pk)
    ).values_list("new", flat=True)
    audited = sum(fixed_in(entry) for entry in entries)
    scenario.expect("rows fixed according to the audit trail", audited, m)
    scenario.note(f"{len(entries)} source.reprocessed audit entries")
    return scenario


def fixed_in(entry) -> int:
    """Rows an audit entry says it fixed (older entries only give outcomes)."""
    if not isinstance(entry, dict):
        return 0
    if "fixed" in entry:
        return int(entry["fixed"])
    return int((entry.get("outcomes") or {}).get("parsed", 0))


def detection_scenario(worker: Worker, timeout: float) -> Scenario:
    from django.db.models import Count, F
    from django.utils import timezone
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from notifwatch.deliveries.models import Notification
    from notifwatch.failures.models import FailureGroup, Kind, Occurrence
    from notifwatch.worker.models import Schedule

    scenario = Scenario("detection")
    failing = Notification.objects.filter(counts_as_failure=True).count()
    scenario.note(f"{failing} failed notifications to count")
    if not failing:
        scenario.problems.append("no failed notifications: nothing to detect")
        return scenario
    occurrences = Occurrence.objects.filter(group__kind=Kind.DELIVERY_FAILURE)
    before = Schedule.objects.get(name="run_checks")
    started = time.monotonic()
    Schedule.objects.filter(pk=before.pk).update(enabled=True, next_run_at=timezone.now())
    run_id = wait_until(
        lambda: (
            Schedule.objects.filter(pk=before.pk)
            .exclude(last_result_id=before.last_result_id)
            .values_list("last_result_id", flat=True)
            .first()
        ),
        timeout,
        what="the scheduler to enqueue run_checks",
    )
    task = DBTaskResult.objects.filter(pk=run_id)
    try:
        wait_until(
            lambda: (
                occurrences.exists() or task.filter(status=TaskResultStatus.SUCCESSFUL).exists()
            ),
            timeout,
            interval=0.02,
            what="the pass to count its first failures",
        )
    finally:
        worker.kill()
    at_kill = occurrences.count()
    scenario.note(
        f"worker SIGKILLed {time.monotonic() - started:.1f} s after 'run now', "
        f"{at_kill} of {failing} failures counted"
    )
    if task.filter(status=TaskResultStatus.SUCCESSFUL).exists() or at_kill >= failing:
        raise TooLate("the detection pass finished before the kill")
    status, took = restart_until_finished(
        worker, task, timeout, "the killed run_checks to run again and finish"
    )
    scenario.note(f"run_checks {status.lower()} {took:.1f} s after the restart")
    scenario.expect("killed run_checks run", status, TaskResultStatus.SUCCESSFUL)
    scenario.expect("failures counted", occurrences.count(), failing)
    scenario.expect(
        "failures counted in more than one exception",
        occurrences.values("notification").annotate(n=Count("id")).filter(n__gt=1).count(),
        0,
    )
    stale = (
        FailureGroup.objects.annotate(rows=Count("occurrence_rows"))
        .exclude(occurrences=F("rows"))
        .values_list("pk", "occurrences", "rows")
    )
    scenario.expect(
        "exceptions whose occurrence count differs from their occurrences (id, stored, rows)",
        list(stale[:5]),
        [],
    )
    groups = FailureGroup.objects.filter(kind=Kind.DELIVERY_FAILURE)
    scenario.note(f"{groups.count()} delivery-failure exceptions")
    return scenario


def restart_until_finished(worker: Worker, task, timeout: float, what: str) -> tuple[str, float]:
    """Start the killed worker again and wait for the task to end; its status and how long."""
    from django_tasks import TaskResultStatus

    restarted = time.monotonic()
    worker.start()
    status = wait_until(
        lambda: (
            task.exclude(status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING])
            .values_list("status", flat=True)
            .first()
        ),
        timeout,
        interval=0.5,
        what=what,
    )
    return status, time.monotonic() - restarted


def bulk_scenario(worker: Worker, sizes: Sizes, timeout: float) -> Scenario:
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from notifwatch.audit.models import AuditEntry
    from notifwatch.failures import bulk
    from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Kind, Status
    from notifwatch.failures.tasks import apply_bulk_in_background
    from notifwatch.ingest.actions import save_source

    scenario = Scenario("bulk")
    k = sizes.bulk_exceptions
    source = save_source(slug="kill-bulk", kind="json", actor_label="bench.reliability").source
    now = timezone.now()
    FailureGroup.objects.bulk_create(
        [
            FailureGroup(
                kind=Kind.DELIVERY_FAILURE,
                title=f"Bulk check exception {i}",
                source=source,
                channel="email",
                purpose=f"bulk_{i}",
                first_seen=now,
                last_seen=now,
                occurrences=1,
            )
            for i in range(k)
        ],
        batch_size=1000,
    )
    reviewer = get_user_model().objects.create_user("kill-reviewer", password="kill-reviewer-pw")
    # The queue's default filter (open exceptions) of this source, as the page would post it.
    querystring = f"source={source.pk}"
    preview = bulk.preview(querystring)
    scenario.expect("exceptions matching the filter", preview.count, k)
    change = bulk.Change(verb="resolve", comment="kill check")
    groups = FailureGroup.objects.filter(source=source)
    started = time.monotonic()
    result = apply_bulk_in_background.enqueue(
        querystring,
        change.as_record(),
        change.comment,
        reviewer.pk,
        preview.count,
        preview.digest,
        None,
    )
    task = DBTaskResult.objects.filter(pk=result.id)
    resolved = groups.filter(status=Status.RESOLVED)
    try:
        wait_until(
            lambda: (
                resolved.count() >= min(k // 4, 500)
                or task.filter(status=TaskResultStatus.SUCCESSFUL).exists()
            ),
            timeout,
            interval=0.02,
            what="a quarter of the bulk change",
        )
    finally:
        worker.kill()
    at_kill = resolved.count()
    scenario.note(
        f"worker SIGKILLed {time.monotonic() - started:.1f} s into the bulk change, {at_kill} of "
        f"{k} exceptions resolved"
    )
    if task.filter(status=TaskResultStatus.SUCCESSFUL).exists() or at_kill >= k:
        raise TooLate("the bulk change finished before the kill")
    status, took = restart_until_finished(
        worker, task, timeout, "the bulk change to run again and finish"
    )
    outcome = task.values_list("return_value", flat=True).first()
    scenario.note(f"bulk task {status.lower()} {took:.1f} s after the restart: {outcome}")
    scenario.expect("bulk task", status, TaskResultStatus.SUCCESSFUL)
    scenario.expect("exceptions resolved", resolved.count(), k)
    history = GroupHistory.objects.filter(group__source=source, kind=HistoryKind.STATUS)
    scenario.expect("status history rows", history.count(), k)
    scenario.expect(
        "exceptions with more than one status history row",
        history.values("group").annotate(n=models_count()).filter(n__gt=1).count(),
        0,
    )
    ids = [str(pk) for pk in groups.values_list("pk", flat=True)]
    per_exception = AuditEntry.objects.filter(
        target_type="failures.failuregroup", target_id__in=ids, action="exception.status"
    )
    scenario.expect("per-exception audit entries", per_exception.count(), k)
    wholes = AuditEntry.objects.filter(
        target_type="exception_set", action__startswith="exception.bulk_"
    )
    scenario.expect(
        "audit entries for the bulk change as a whole",
        sorted(wholes.values_list("action", flat=True)),
        ["exception.bulk_resolve"],
    )
    return scenario


def models_count():
    from django.db.models import Count

    return Count("id")


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability kill")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes ({QUICK.import_events} import lines, {QUICK.reprocess_rows} "
        f"quarantined rows, {QUICK.bulk_exceptions} exceptions)",
    )
    parser.add_argument(
        "--only",
        choices=("import", "reprocess", "detection", "bulk"),
        action="append",
        help="run only these scenarios (detection needs import's data)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per wait (300)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and logs")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    only = set(args.only or ("import", "reprocess", "detection", "bulk"))
    if "detection" in only:
        only.add("import")

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="nw-reliability-kill-"))
    scenarios: list[Scenario] = []
    worker = None
    with PrivateCluster(keep=args.keep) as cluster:
        url = cluster.create_database("nw_kill")
        setup_django(url)
        env = server_env(url) | {
            "NOTIFWATCH_STALE_TASK_SECONDS": str(STALE_TASK_SECONDS),
            "NOTIFWATCH_BASE_URL": "http://127.0.0.1",
        }
        from notifwatch.worker.models import Schedule
        from notifwatch.worker.scheduling import ensure_schedules

        # The detection pass runs when the check says so ("run now"), not while it imports.
        ensure_schedules()
        Schedule.objects.filter(name="run_checks").update(enabled=False)
        worker = Worker(env, work, "--schedule-interval", "1")
        worker.start()
        print(
            f"kill: PostgreSQL {cluster.bin.parent.name} on port {cluster.port}, worker pid "
            f"{worker.pid}, NOTIFWATCH_STALE_TASK_SECONDS={STALE_TASK_SECONDS}, logs in {work}",
            flush=True,
        )
        plan: list[tuple[str, Callable[[], Scenario]]] = [
            ("import", lambda: import_scenario(env, work, sizes, args.timeout)),
            ("reprocess", lambda: reprocess_scenario(worker, work, sizes, args.timeout)),
            ("detection", lambda: detection_scenario(worker, args.timeout)),
            ("bulk", lambda: bulk_scenario(worker, sizes, args.timeout)),
        ]
        try:
            for name, run in plan:
                if name not in only:
                    continue
                began = time.monotonic()
                try:
                    scenario = run()
                except (TooLate, TimeoutError) as stopped:
                    scenario = Scenario(name, problems=[f"{type(stopped).__name__}: {stopped}"])
                    if worker.process is None or worker.process.poll() is not None:
                        worker.start()
                scenarios.append(scenario)
                report(scenario, time.monotonic() - began)
        finally:
            worker.stop()
            from django.db import connections

            connections.close_all()
    problems = sum(len(s.problems) for s in scenarios)
    verdict = "FAIL" if problems else "PASS"
    print(
        f"kill: {verdict} {problems} mismatches in {len(scenarios)} scenarios "
        f"({', '.join(s.name + (' FAIL' if s.problems else ' ok') for s in scenarios)}) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 1 if problems else 0


def report(scenario: Scenario, seconds: float) -> None:
    print(f"  {scenario.name} ({seconds:.1f} s): {'FAIL' if scenario.problems else 'ok'}")
    for line in scenario.figures:
        print(f"    {line}")
    for line in scenario.problems:
        print(f"    MISMATCH {line}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
