"""Is notifwatch itself working? One check per part, each a few indexed queries.

A dashboard that silently stops looks calm: no worker means no detection, so no exception
opens. Each part says ok or failing, why in plain words, and its figures:

- database: it answers `SELECT 1`;
- worker: a worker heartbeat within NOTIFWATCH_WORKER_SILENT_SECONDS (never seen is failing);
- detection: the `run_checks` schedule succeeded within 3 intervals (at least 5 minutes);
- ingest: not every active source silent for NOTIFWATCH_INGEST_SILENT_SECONDS (once something
  arrived), and no raw event left unprocessed (waiting over 5 minutes, or failed on every try);
- alerts: none finally failed in the last day, none pending 15 minutes past its time;
- heartbeat (only with NOTIFWATCH_HEARTBEAT_URL): the last outgoing ping went through.

/healthz answers anyone, so the words name no customer, address, error text or secret URL.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.utils import timezone

from notifwatch.alerts.models import Alert, AlertStatus
from notifwatch.deliveries.overview import UNPROCESSED_AFTER
from notifwatch.ingest.models import Outcome, RawEvent, Source
from notifwatch.worker.models import HeartbeatPing, Schedule, WorkerHeartbeat

PARTS = ("database", "worker", "detection", "ingest", "alerts", "heartbeat")
DETECTION_SCHEDULE = "run_checks"
# Detection may be this many intervals late (a slow pass, a retry) before it is news...
DETECTION_INTERVALS = 3
# ...and never less than this.
DETECTION_LEAST = timedelta(minutes=5)
FAILED_ALERTS_WITHIN = timedelta(days=1)
ALERT_OVERDUE_AFTER = timedelta(minutes=15)
START_THE_WORKER = "is `manage.py run_worker` running?"


@dataclass(frozen=True)
class Part:
    name: str
    ok: bool
    reason: str  # plain words, what is wrong or what is fine
    figures: dict = field(default_factory=dict)  # JSON-ready


@dataclass(frozen=True)
class Health:
    checked_at: datetime
    parts: tuple[Part, ...]

    @property
    def ok(self) -> bool:
        return all(part.ok for part in self.parts)

    @property
    def failing(self) -> list[Part]:
        return [part for part in self.parts if not part.ok]

    def part(self, name: str) -> Part | None:
        return next((part for part in self.parts if part.name == name), None)

    @property
    def worker_stopped(self) -> bool:
        """A worker that ran before and fell silent: nobody but the web side can raise the alarm."""
        worker = self.part("worker")
        return (
            worker is not None and not worker.ok and worker.figures.get("last_seen_at") is not None
        )

    def as_text(self) -> str:
        lines = ["ok" if self.ok else "failing"]
        lines += [
            f"{part.name}: {'ok' if part.ok else 'failing'} — {part.reason}" for part in self.parts
        ]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        return {
            "status": "ok" if self.ok else "failing",
            "checked_at": self.checked_at.isoformat(),
            "parts": {
                part.name: {"ok": part.ok, "reason": part.reason, **part.figures}
                for part in self.parts
            },
        }


def check_health(now: datetime | None = None, parts: Iterable[str] | None = None) -> Health:
    """Check every part (or only `parts`); a database that does not answer fails alone."""
    now = now or timezone.now()
    wanted = [name for name in PARTS if parts is None or name in set(parts)]
    if "heartbeat" in wanted and not settings.NOTIFWATCH_HEARTBEAT_URL:
        wanted.remove("heartbeat")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        found = [CHECKS[name](now) for name in wanted]
    except DatabaseError as exc:
        # The other parts cannot be known without it: the answer names the database only.
        return Health(
            now,
            (
                Part(
                    "database",
                    False,
                    "the database does not answer",
                    {"error": type(exc).__name__},
                ),
            ),
        )
    return Health(now, tuple(found))


def elapsed_words(delta: timedelta) -> str:
    """'45 seconds', '9 minutes', '7 hours', '2 days': the largest whole unit."""
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    raise AssertionError("unreachable")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def check_database(now: datetime) -> Part:
    # Reached only once `SELECT 1` answered (check_health).
    return Part("database", True, "the database answers")


def check_worker(now: datetime) -> Part:
    limit = timedelta(seconds=settings.NOTIFWATCH_WORKER_SILENT_SECONDS)
    seen = WorkerHeartbeat.objects.aggregate(
        last=Max("last_seen_at"),
        alive=Count("id", filter=Q(last_seen_at__gte=now - limit)),
    )
    last = seen["last"]
    figures = {
        "last_seen_at": last.isoformat() if last else None,
        "workers_alive": seen["alive"],
        "silent_after_seconds": int(limit.total_seconds()),
    }
    if last is None:
        return Part(
            "worker", False, f"no worker has ever sent a heartbeat ({START_THE_WORKER})", figures
        )
    silent = now - last
    figures["silent_seconds"] = max(int(silent.total_seconds()), 0)
    if silent > limit:
        return Part(
            "worker",
            False,
            f"no worker heartbeat for {elapsed_words(silent)} ({START_THE_WORKER})",
            figures,
        )
    return Part(
        "worker",
        True,
        f"{plural(seen['alive'], 'worker')} alive, last heartbeat {elapsed_words(silent)} ago",
        figures,
    )


def check_detection(now: datetime) -> Part:
    schedule = (
        Schedule.objects.filter(name=DETECTION_SCHEDULE)
        .values("enabled", "interval_seconds", "last_succeeded_at", "consecutive_failures")
        .first()
    )
    if schedule is None:
        return Part("detection", False, f"detection has never run ({START_THE_WORKER})", {})
    allowed = max(
        timedelta(seconds=DETECTION_INTERVALS * schedule["interval_seconds"]), DETECTION_LEAST
    )
    last = schedule["last_succeeded_at"]
    failures = schedule["consecutive_failures"]
    figures = {
        "last_succeeded_at": last.isoformat() if last else None,
        "allowed_seconds": int(allowed.total_seconds()),
        "consecutive_failures": failures,
    }
    if not schedule["enabled"]:
        return Part(
            "detection",
            False,
            "detection is switched off (the run_checks schedule is disabled in the admin)",
            figures,
        )
    # The error itself is on the schedule's admin page, for those signed in.
    why = (
        f"it failed {plural(failures, 'time')} in a row: see the run_checks schedule in the admin"
        if failures
        else START_THE_WORKER
    )
    if last is None:
        return Part("detection", False, f"detection has never run ({why})", figures)
    late = now - last
    figures["since_seconds"] = max(int(late.total_seconds()), 0)
    if late > allowed:
        return Part(
            "detection", False, f"detection has not run for {elapsed_words(late)} ({why})", figures
        )
    return Part("detection", True, f"detection ran {elapsed_words(late)} ago", figures)


def check_ingest(now: datetime) -> Part:
    """One query: per source, its last raw event and its unprocessed ones (index probes)."""
    limit = timedelta(seconds=settings.NOTIFWATCH_INGEST_SILENT_SECONDS)
    raws = RawEvent.objects.filter(source=OuterRef("pk")).order_by()
    # Calls with a bad signature are not the source speaking (the overview reads it so too).
    last = raws.exclude(outcome=Outcome.REJECTED).order_by("-received_at").values("received_at")
    failed = raws.filter(outcome=Outcome.FAILED).values("source").annotate(n=Count("id"))
    waiting = (
        raws.filter(outcome=Outcome.RECEIVED, received_at__lt=now - UNPROCESSED_AFTER)
        .values("source")
        .annotate(n=Count("id"))
    )
    sources = list(
        Source.objects.order_by()
        .annotate(
            last_received=Subquery(last[:1]),
            failed_raw=Subquery(failed.values("n")),
            waiting_raw=Subquery(waiting.values("n")),
        )
        .values("is_active", "last_received", "failed_raw", "waiting_raw")
    )
    heard = [s["last_received"] for s in sources if s["is_active"] and s["last_received"]]
    last_received = max(heard, default=None)
    failed_count = sum(s["failed_raw"] or 0 for s in sources)
    waiting_count = sum(s["waiting_raw"] or 0 for s in sources)
    figures = {
        "active_sources": sum(1 for s in sources if s["is_active"]),
        "last_received_at": last_received.isoformat() if last_received else None,
        "silent_after_seconds": int(limit.total_seconds()),
        "raw_waiting": waiting_count,
        "raw_failed": failed_count,
    }
    problems = []
    if last_received is not None and now - last_received > limit:
        problems.append(
            f"no raw event from any source for {elapsed_words(now - last_received)} "
            "(is every sender stopped, or can they no longer reach notifwatch?)"
        )
    if waiting_count:
        problems.append(
            f"{plural(waiting_count, 'raw event')} waiting over "
            f"{elapsed_words(UNPROCESSED_AFTER)} to be processed ({START_THE_WORKER})"
        )
    if failed_count:
        problems.append(
            f"{plural(failed_count, 'raw event')} could not be processed (an error on every try: "
            "reprocess them from their source page)"
        )
    if problems:
        return Part("ingest", False, "; ".join(problems), figures)
    if last_received is None:
        return Part("ingest", True, "no raw event received yet", figures)
    return Part("ingest", True, f"last raw event {elapsed_words(now - last_received)} ago", figures)


def check_alerts(now: datetime) -> Part:
    failed = Q(status=AlertStatus.FAILED, created_at__gte=now - FAILED_ALERTS_WITHIN)
    overdue = Q(status=AlertStatus.PENDING, next_attempt_at__lt=now - ALERT_OVERDUE_AFTER)
    # One query; the OR of two statuses stays on the (status, next_attempt_at) index.
    counts = Alert.objects.filter(failed | overdue).aggregate(
        failed=Count("id", filter=failed), overdue=Count("id", filter=overdue)
    )
    figures = {"failed_last_day": counts["failed"], "overdue": counts["overdue"]}
    problems = []
    if counts["failed"]:
        problems.append(
            f"{plural(counts['failed'], 'alert')} could not be sent in the last day "
            "(see the overview)"
        )
    if counts["overdue"]:
        problems.append(
            f"{plural(counts['overdue'], 'alert')} waiting over "
            f"{elapsed_words(ALERT_OVERDUE_AFTER)} to be sent ({START_THE_WORKER})"
        )
    if problems:
        return Part("alerts", False, "; ".join(problems), figures)
    return Part("alerts", True, "alerts go out", figures)


def check_heartbeat(now: datetime) -> Part:
    url = settings.NOTIFWATCH_HEARTBEAT_URL
    # The host only: a healthchecks.io URL carries its secret in the path.
    host = urlsplit(url).hostname or "?"
    ping = HeartbeatPing.objects.filter(url=url[:500]).values().first()
    figures = {
        "host": host,
        "last_attempt_at": ping["last_attempt_at"].isoformat() if ping else None,
        "last_ok_at": ping["last_ok_at"].isoformat() if ping and ping["last_ok_at"] else None,
    }
    if ping is None:
        return Part(
            "heartbeat", True, f"no ping to {host} yet (one follows each detection pass)", figures
        )
    if ping["last_error"]:
        return Part(
            "heartbeat",
            False,
            f"the outgoing heartbeat to {host} failed "
            f"{elapsed_words(now - ping['last_attempt_at'])} ago, so the outside monitor "
            "will think notifwatch is down",
            figures,
        )
    return Part(
        "heartbeat",
        True,
        f"last ping to {host} went through {elapsed_words(now - ping['last_attempt_at'])} ago",
        figures,
    )


CHECKS = {
    "database": check_database,
    "worker": check_worker,
    "detection": check_detection,
    "ingest": check_ingest,
    "alerts": check_alerts,
    "heartbeat": check_heartbeat,
}
