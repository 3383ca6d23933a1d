import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.utils import timezone

from notifwatch.alerts.models import AlertKind, Channel, Subscription
from notifwatch.worker.heartbeats import record_heartbeat
from notifwatch.worker.models import Schedule


@pytest.fixture(autouse=True)
def fresh_banner():
    # The banner is cached per process: each test starts from what its own database says.
    cache.clear()
    yield
    cache.clear()


def run_checks_schedule(last_succeeded_at: datetime | None, **fields) -> Schedule:
    return Schedule.objects.create(
        name="run_checks",
        task_path="notifwatch.failures.detection.run_checks",
        interval_seconds=60,
        next_run_at=timezone.now(),
        last_succeeded_at=last_succeeded_at,
        **fields,
    )


@pytest.fixture
def healthy(db):
    """A worker that beat a few seconds ago and a detection pass a minute ago."""
    now = timezone.now()
    record_heartbeat("worker-1", now - timedelta(seconds=3))
    run_checks_schedule(now - timedelta(minutes=1))
    return now


@pytest.fixture
def worker_stopped(db):
    """The worker beat its last 9 minutes ago; detection last ran just before."""
    now = timezone.now()
    record_heartbeat("worker-1", now - timedelta(minutes=9))
    run_checks_schedule(now - timedelta(minutes=9, seconds=30))
    return now


@pytest.fixture
def health_subscriber(admin_user):
    admin_user.email = "alice@example.com"
    admin_user.save(update_fields=["email"])
    return Subscription.objects.create(
        user=admin_user, kind=AlertKind.HEALTH, channel=Channel.EMAIL
    )


class PingReceiver:
    """A healthchecks.io stand-in on 127.0.0.1: records each GET, answers `status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                receiver.paths.append(self.path)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ping/5a1f") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ping_receiver():
    started: list[PingReceiver] = []

    def start(status: int = 200) -> PingReceiver:
        started.append(PingReceiver(status))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()
