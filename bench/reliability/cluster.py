"""A private PostgreSQL cluster for the reliability checks: its own data directory and port.

The outage check stops and restarts PostgreSQL under load, so the harness never uses a shared
server: it runs `initdb` into a temporary directory, starts that cluster on a free port of
127.0.0.1 (no TCP on any other address, its socket in the same directory) and removes it at exit.
Only this cluster is ever stopped: `pg_ctl -D <its data directory>`.

    with PrivateCluster() as cluster:
        url = cluster.create_database("nw_replay")
        cluster.stop(mode="immediate")   # a crash, as far as clients can tell
        cluster.start()
"""

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# The checks kill PostgreSQL's processes, never the machine: what a commit wrote is in the
# operating system's cache, so fsync can be skipped. synchronous_commit must stay on: off, a
# commit returns before its WAL is written, and `pg_ctl stop -m immediate` loses it.
FAST_SETTINGS = "-c fsync=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=64MB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path:
    """The newest installed server binaries (Debian/Ubuntu layout), or PG_BIN when set."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name.split(".")[0]),
    )
    if not found:
        on_path = shutil.which("initdb")
        if on_path:
            return Path(on_path).parent
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb) found: install postgresql, or set PG_BIN"
        )
    return Path(found[-1]).parent


class PrivateCluster:
    """One PostgreSQL cluster of the harness's own, removed when the harness exits."""

    def __init__(self, port: int | None = None, keep: bool = False):
        self.bin = postgres_bin_dir()
        self.port = port or free_port()
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="nw-reliability-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.running = False
        # PostgreSQL refuses to run as root: then the cluster belongs to the postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, user="postgres")
        atexit.register(self.remove)

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def init(self) -> "PrivateCluster":
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        return self

    def start(self, timeout: int = 60) -> float:
        """Start the cluster and wait until it accepts connections; seconds it took."""
        started = time.monotonic()
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} {FAST_SETTINGS}"
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(timeout),
            "start",
        )
        self.running = True
        return time.monotonic() - started

    def stop(self, mode: str = "fast", timeout: int = 60) -> float:
        """Stop this cluster (by its data directory); `immediate` is a crash for its clients."""
        started = time.monotonic()
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(timeout), "stop")
        self.running = False
        return time.monotonic() - started

    @property
    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database in this cluster; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its directory (unless kept for a look)."""
        if self.pid is not None:
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            self.running = False
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PrivateCluster":
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
