"""Ingest benchmark: importer and API throughput next to a bare COPY of the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/ingest_bench.py
    .venv/bin/python bench/ingest_bench.py --lines 50000          # SQLite (temp file)

It creates its own scratch database (notifwatch_bench on PostgreSQL, a temp file on SQLite),
so it never touches real data. Figures are ratios within one run: these machines drift.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database, setup_django  # noqa: E402

PURPOSES = [
    "order_confirmation",
    "order_shipped",
    "password_reset",
    "invoice_available",
    "ticket_reply",
    "renewal_notice",
]


def generate_lines(count: int, seed: int = 1) -> list[bytes]:
    """In-house sender log lines: ~1.6 events per notification, some retries and failures."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 10, tzinfo=UTC)
    lines: list[bytes] = []
    n = 0
    while len(lines) < count:
        n += 1
        at = start + timedelta(seconds=n * 3)
        purpose = rng.choice(PURPOSES)
        channel = "sms" if purpose == "password_reset" and n % 3 == 0 else "email"
        recipient = (
            {"phone": f"+1415555{n % 10000:04d}"}
            if channel == "sms"
            else {"email": f"customer{n % 50000}@example.com"}
        )
        base = {
            "level": "info",
            "service": "notif-sender",
            "host": f"notif-worker-{n % 4}",
            "event": "notification.attempt",
            "channel": channel,
            "provider": "sendgrid",
            "customer_id": f"cus_{n % 50000}",
            "order_id": f"ORD-{n}",
            "template": purpose,
            "idempotency_key": f"bench-{n}:{purpose}:{channel}",
            "recipient": recipient,
            "trace_id": f"{rng.getrandbits(64):016x}",
            "duration_ms": rng.randint(80, 900),
        }
        attempts = 2 if n % 10 == 0 else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            status = "delivered" if last else "failed"
            error = (
                None
                if last
                else {
                    "type": "http_status",
                    "code": 503,
                    "retryable": True,
                    "message": "POST /v3/mail/send returned 503",
                }
            )
            line = {
                **base,
                "ts": (at + timedelta(seconds=attempt * 30)).isoformat(),
                "attempt": attempt,
                "status": "accepted" if last and n % 7 == 0 else status,
                "message_id": f"msg{n}x{attempt}",
                "error": error,
            }
            lines.append(json.dumps(line).encode())
    return lines[:count]


def canonical_batch(first: int, size: int) -> bytes:
    at = datetime(2025, 3, 12, tzinfo=UTC)
    return json.dumps(
        [
            {
                "event_id": f"api-{i}",
                "occurred_at": (at + timedelta(seconds=i)).isoformat(),
                "notification_key": f"api-n-{i}",
                "channel": "email",
                "purpose": "invoice_available",
                "status": "delivered",
                "customer_id": f"cus_{i % 5000}",
                "recipient": f"payer{i % 5000}@example.com",
                "refs": {"invoice_id": f"INV-{i}"},
            }
            for i in range(first, first + size)
        ]
    ).encode()


def baseline_rows_per_second(lines: list[bytes]) -> float:
    """The same lines written into a bare table: COPY on PostgreSQL, executemany on SQLite."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_baseline")
        cursor.execute(
            "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, line text)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE bench_baseline (id integer PRIMARY KEY, line text)"
        )
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            with cursor.copy("COPY bench_baseline (line) FROM STDIN") as copy:
                for line in lines:
                    copy.write_row((line.decode(),))
    else:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_baseline (line) VALUES (%s)",
                [(line.decode(),) for line in lines],
            )
    return len(lines) / (time.perf_counter() - started)


def importer_rows_per_second(lines: list[bytes], slug: str) -> tuple[float, object]:
    from notifwatch.ingest.importer import import_path
    from notifwatch.ingest.models import Source

    path = Path(tempfile.mkdtemp()) / "bench.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    source = Source.objects.get(slug=slug)
    started = time.perf_counter()
    summary = import_path(source, str(path))
    return len(lines) / (time.perf_counter() - started), summary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_events_per_second(url: str, token: str, batches: int, batch_size: int) -> float:
    """One gunicorn sync worker; batches posted over one keep-alive connection."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "notifwatch.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Host": "127.0.0.1",
        }
        bodies = [canonical_batch(i * batch_size, batch_size) for i in range(batches)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/api/v1/events", body=bodies[0], headers=headers)  # warm-up
        assert conn.getresponse().read() and True
        started = time.perf_counter()
        for body in bodies[1:]:
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise SystemExit(f"API answered {response.status}: {payload[:300]!r}")
        elapsed = time.perf_counter() - started
        return (batches - 1) * batch_size / elapsed
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--api-batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()

    url = scratch_database(os.environ.get("DATABASE_URL"), "notifwatch_bench")
    setup_django(url)
    from django.db import connection

    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.presets import load_preset

    save_source(slug="bench-log", kind="json", mapping=load_preset("inhouse_log"))
    token = save_source(slug="bench-api", kind="json").new_token
    lines = generate_lines(args.lines)
    print(
        f"database: {connection.vendor}; {len(lines):,} JSON lines "
        f"({sum(map(len, lines)) / len(lines):.0f} bytes each)"
    )

    baseline = baseline_rows_per_second(lines)
    print(
        f"baseline (bare {'COPY' if connection.vendor == 'postgresql' else 'executemany'}): "
        f"{baseline:>10,.0f} rows/s"
    )
    rate, summary = importer_rows_per_second(lines, "bench-log")
    print(
        f"importer (import_events):  {rate:>10,.0f} lines/s  = {rate / baseline:.0%} of baseline"
        f"  (stored {summary.stored:,}, quarantined {len(summary.quarantined)})"
    )
    again, summary = importer_rows_per_second(lines, "bench-log")
    print(f"re-import (all duplicates): {again:>9,.0f} lines/s  (stored {summary.stored})")
    connection.close()
    api = api_events_per_second(url, token, args.api_batches, args.batch_size)
    print(f"API, 1 sync worker, batches of {args.batch_size}: {api:>8,.0f} events/s")


if __name__ == "__main__":
    main()
