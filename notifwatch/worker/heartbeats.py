"""The worker says it is alive: a heartbeat row per process, and the optional outgoing ping.

The health check (notifwatch.health.checks) reads both: a worker silent for longer than
NOTIFWATCH_WORKER_SILENT_SECONDS is a failing part, and so is a ping that did not go through.
"""

import logging
import os
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from notifwatch.worker.models import HeartbeatPing, WorkerHeartbeat

logger = logging.getLogger("notifwatch.worker")

# A worker not seen for this long is gone (restarted under a new id): its row is dropped.
FORGOTTEN_AFTER = timedelta(days=1)
# The outside monitor must not hold up the detection pass.
PING_TIMEOUT_SECONDS = 10


def record_heartbeat(worker_id: str, now: datetime | None = None) -> None:
    """Say that worker `worker_id` is alive now: one upsert, in SQL, whoever else writes."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [
            WorkerHeartbeat(
                worker_id=worker_id,
                hostname=socket.gethostname()[:255],
                pid=os.getpid(),
                started_at=now,
                last_seen_at=now,
            )
        ],
        update_conflicts=True,
        unique_fields=["worker_id"],
        # started_at stays the first tick's.
        update_fields=["hostname", "pid", "last_seen_at"],
    )


def forget_gone_workers(now: datetime | None = None) -> int:
    """Drop the rows of workers not seen for a day; called when a worker starts."""
    now = now or timezone.now()
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen_at__lt=now - FORGOTTEN_AFTER).delete()
    return deleted


def ping_heartbeat_url(now: datetime | None = None, url: str | None = None) -> bool:
    """GET NOTIFWATCH_HEARTBEAT_URL (healthchecks.io style) and record how it went.

    Never raises: a monitor that is down must not fail the detection pass it reports on. False
    when no URL is set or the ping failed (logged, and shown by the health check).
    """
    url = settings.NOTIFWATCH_HEARTBEAT_URL if url is None else url
    if not url:
        return False
    now = now or timezone.now()
    error = ""
    try:
        with urllib.request.urlopen(url, timeout=PING_TIMEOUT_SECONDS) as answer:
            answer.read(1024)
    except urllib.error.HTTPError as exc:
        error = f"the heartbeat URL answered {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        error = f"the heartbeat URL could not be reached: {getattr(exc, 'reason', exc)}"
    if error:
        logger.warning("Outgoing heartbeat to %s failed: %s", url, error)
    HeartbeatPing.objects.update_or_create(
        url=url[:500],
        defaults={"last_attempt_at": now, "last_error": error[:2000]}
        | ({} if error else {"last_ok_at": now}),
    )
    return not error
