"""The app under test: a migrated private database, sources with known secrets, gunicorn and
the worker as in production (3 workers x 4 threads), all on 127.0.0.1.

    with running_app("replay") as app:        # cluster + database + sources + gunicorn
        app.base_url, app.credentials, app.cluster.stop("immediate"), ...

The harness process itself runs Django against the same database (to create sources and to
count what was stored); HTTP clients run in other processes and never touch the database.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.cluster import PrivateCluster, free_port
from bench.scratch import setup_django

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_WORKERS = 3
GUNICORN_THREADS = 4

# Known secrets: the harness signs its own requests. Never used outside the private cluster.
API_TOKEN = "nw_reliability_api_token_0123456789abcdef"
STANDARD_WEBHOOKS_SECRET = "whsec_cmVsaWFiaWxpdHktc3RhbmRhcmQtd2ViaG9va3Mta2V5"
BASIC_AUTH = "hooks:reliability-password"
MAILGUN_SIGNING_KEY = "reliability-mailgun-signing-key-0123456789"
TWILIO_AUTH_TOKEN = "reliability_twilio_auth_token_0123456789"
# Amazon SES is left out: its SNS signatures are checked with a certificate downloaded from
# amazonaws.com, and the harness talks to nothing but 127.0.0.1.
BASIC_AUTH_PROVIDERS = (
    "sendgrid",
    "postmark",
    "brevo",
    "mailersend",
    "mailjet",
    "mailtrap",
    "mandrill",
    "postal",
    "resend",
    "sparkpost",
    "unisender_go",
)


@dataclass(frozen=True)
class Endpoint:
    """Where one source receives calls and how they authenticate."""

    kind: str  # source kind
    path: str  # URL path on the server
    auth: str  # "bearer", "standard_webhooks", "basic", "mailgun" or "twilio"
    secret: str


@dataclass
class Credentials:
    """Every endpoint the harness posts to, by a short name: api, sw, sendgrid, ..."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    slugs: dict[str, str] = field(default_factory=dict)


def create_sources() -> Credentials:
    """One source per endpoint the checks use, with the secrets above (needs Django set up)."""
    from notifwatch.ingest.actions import save_source

    plan = {
        "api": ("rel-api", "json", API_TOKEN, "bearer"),
        "sw": ("rel-signed", "json", STANDARD_WEBHOOKS_SECRET, "standard_webhooks"),
        "mailgun": ("rel-mailgun", "mailgun", MAILGUN_SIGNING_KEY, "mailgun"),
        "twilio": ("rel-twilio", "twilio", TWILIO_AUTH_TOKEN, "twilio"),
        **{
            kind: (f"rel-{kind.replace('_', '-')}", kind, BASIC_AUTH, "basic")
            for kind in BASIC_AUTH_PROVIDERS
        },
    }
    credentials = Credentials()
    for name, (slug, kind, secret, auth) in plan.items():
        save_source(slug=slug, kind=kind, secret=secret, actor_label="bench.reliability")
        path = "/api/v1/events" if name == "api" else f"/hooks/{slug}/"
        credentials.endpoints[name] = Endpoint(kind=kind, path=path, auth=auth, secret=secret)
        credentials.slugs[name] = slug
    return credentials


def wait_for_health(base_url: str, deadline: float, process: subprocess.Popen | None = None):
    """Until GET /healthz answers 200; RuntimeError when the deadline passes or it died."""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with suppress(OSError):
            with urllib.request.urlopen(f"{base_url}/healthz?part=database", timeout=2) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"{base_url}/healthz did not answer 200 in time")


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL to its own process group (it was started in a new session)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class AppServer:
    """gunicorn serving notifwatch on a free port of 127.0.0.1, logging to a file."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Twilio (and Mandrill) sign the URL they call: it must be the one we post to.
        self.env = {**env, "NOTIFWATCH_BASE_URL": self.base_url}
        self.log = log_dir / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        # Django logs to standard error: into the same file as gunicorn's own messages.
        with open(self.log, "ab") as log:
            self.process = self.spawn(log)
        wait_for_health(self.base_url, time.monotonic() + timeout, self.process)

    def spawn(self, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "notifwatch.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(GUNICORN_WORKERS),
                "--threads",
                str(GUNICORN_THREADS),
                "--log-level",
                "warning",
                "--error-logfile",
                "-",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=20)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Worker:
    """`manage.py run_worker`, as production runs it beside gunicorn."""

    def __init__(self, env: dict[str, str], log_dir: Path, *extra_args: str):
        self.env = env
        self.log = log_dir / "worker.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker", "--interval", "1", *self.extra_args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=30)

    def kill(self) -> None:
        """SIGKILL this worker (only it: by its pid)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class App:
    cluster: PrivateCluster
    database_url: str
    credentials: Credentials
    server: AppServer
    worker: Worker | None
    log_dir: Path
    # A check that failed sets this: its logs are kept for a look (else they are removed).
    keep_logs: bool = False

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port


def server_env(database_url: str) -> dict[str, str]:
    """Production settings (DEBUG off) over plain HTTP on 127.0.0.1."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="0",
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
    )
    return env


@contextmanager
def running_app(
    name: str, *, worker: bool = True, keep: bool = False, worker_args: tuple[str, ...] = ()
) -> Iterator[App]:
    """A private cluster with database `nw_<name>`, migrated, sources created, gunicorn up
    (and the worker, unless worker=False); everything stopped and removed afterwards."""
    cluster = PrivateCluster(keep=keep)
    log_dir = Path(tempfile.mkdtemp(prefix=f"nw-reliability-{name}-"))
    server = None
    background = None
    app = None
    try:
        cluster.init()
        cluster.start()
        url = cluster.create_database(f"nw_{name}")
        setup_django(url)  # migrates
        credentials = create_sources()
        env = server_env(url)
        server = AppServer(env, log_dir)
        server.start()
        if worker:
            background = Worker(server.env, log_dir, *worker_args)
            background.start()
        print(
            f"  app: gunicorn {GUNICORN_WORKERS}x{GUNICORN_THREADS} at {server.base_url} "
            f"(pid {server.pid}), PostgreSQL {cluster.bin.parent.name} on port {cluster.port}, "
            f"logs in {log_dir}",
            flush=True,
        )
        app = App(cluster, url, credentials, server, background, log_dir)
        yield app
    finally:
        if background is not None:
            background.stop()
        if server is not None:
            server.stop()
        with suppress(Exception):
            from django.db import connections

            connections.close_all()
        if keep:
            print(f"  kept: cluster data in {cluster.root}, logs in {log_dir}")
        elif app is not None and app.keep_logs:
            print(f"  logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
        cluster.remove()


def wait_for_received(seconds: float) -> int:
    """Give rows left `received` (a 202, a crash mid-request) a bounded time to be processed:
    the worker retries a row once it is 60 s old, on a schedule of every minute. Returns how
    many are still left."""
    from notifwatch.ingest.models import Outcome, RawEvent

    deadline = time.monotonic() + seconds
    left = RawEvent.objects.filter(outcome=Outcome.RECEIVED).count()
    if left:
        print(f"  {left} raw rows left received: waiting up to {seconds:.0f} s", flush=True)
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = RawEvent.objects.filter(outcome=Outcome.RECEIVED).count()
    return left


def log_excerpt(path: Path, limit: int = 12) -> list[str]:
    """The exception lines of a log (last line of each traceback), most frequent first."""
    if not path.exists():
        return []
    counts: dict[str, int] = {}
    lines = path.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = index + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            if end < len(lines):
                counts[lines[end][:200]] = counts.get(lines[end][:200], 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return [f"{count} x {line}" for line, count in ranked[:limit]]
