"""Export benchmark: 1M notifications as CSV through the web endpoint and through the command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/export_bench.py
    .venv/bin/python bench/export_bench.py --notifications 50000      # SQLite (temp file)
    ... --reuse            # keep the seeded scratch database from the last run (PostgreSQL)
    ... --explain          # also print the full plans of the filtered search pages

It creates its own scratch database (nw_export_bench on PostgreSQL, a temp file on SQLite) and
seeds it with bench/overview_bench.seed (notifications over 8 days, ~20 sources, exceptions with
occurrences). Then, in one run, after an untimed pass that warms the page cache:

- bare: the export's own values() query (``exports.notification_rows`` for the command,
  ``exports.notification_values`` over the search page's filtered queryset for the web), iterated
  with ``.iterator(chunk_size=2000)`` inside a transaction on PostgreSQL, nothing else: the rate
  the database and the ORM allow. It runs just before and just after its export, and the mean of
  the two is the reference (these VMs' page cache comes and goes under the database);
- command: ``manage.py export notifications --format csv --output FILE`` as a child process, its
  peak RSS (VmHWM, read every 50 ms) against the same command exporting 0 rows. Its seconds
  include the process's start (the 0-row run's time is printed). FILE is a scratch file, never
  /dev/null: the command writes a temporary file beside its output and renames it into place,
  which as root would replace /dev/null itself;
- web: a real gunicorn (one sync worker) serving ``/notifications/export.csv?from=<9 days
  ago>`` to an auditor signed in through the login form, over HTTP/1.0 (as nginx proxies by
  default), the body's lines counted while streaming, the worker's VmRSS sampled every 50 ms
  against its idle size after warm-up requests (a filtered page, a small export).

Targets (issue): each export at ≥ 50% of its bare iteration's rate, and peak memory growing by
less than 50 MB over the process's idle size. Then it times the search page's filtered lists,
first page and a deep one, and names the indexes their plans read (--explain prints the plans).
"""

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overview_bench import seed  # noqa: E402
from bench.scratch import scratch_database, setup_django  # noqa: E402

SCRATCH = "nw_export_bench"
TARGET_SHARE = 50  # % of the bare iteration's rate
TARGET_GROWTH_MB = 50
AUDITOR = ("bench-auditor", "bench-auditor-password-0123")
SAMPLE_EVERY = 0.05
IGNORED_WARNING = "ignore:No directory at:UserWarning"
# The indexes a plan reads ("notif_last_event"), and the tables it reads whole.
SCAN = re.compile(r"(Seq Scan on|Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)")


# --- bare iteration -------------------------------------------------------------------------


def bare(queryset) -> tuple[int, float]:
    """Iterate the query as the export does (same chunk size, same transaction), nothing else."""
    from django.db import connection, transaction

    from notifwatch.audit.exports import CHUNK_SIZE

    in_transaction = (
        transaction.atomic() if connection.vendor == "postgresql" else contextlib.nullcontext()
    )
    count = 0
    started = time.perf_counter()
    with in_transaction:
        iterator = queryset.iterator(chunk_size=CHUNK_SIZE)
        for _ in iterator:
            count += 1
    return count, time.perf_counter() - started


# --- the command ----------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)  # setup_django put DATABASE_URL, SECRET_KEY and the rest there
    env.update(DEBUG="0", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    # Static files come from the finders here: no collectstatic, so no STATIC_ROOT to find.
    env["PYTHONWARNINGS"] = IGNORED_WARNING
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def run_command(args: list[str]) -> tuple[float, float, str]:
    """Run `manage.py <args>`: (seconds, its peak RSS in MB, its stderr).

    The peak is the child's own VmHWM, read every 50 ms while it runs (it only grows), not
    getrusage's ru_maxrss: Linux carries the parent's peak over into a child's across exec.
    """
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0.0
    while child.poll() is None:
        with contextlib.suppress(OSError, KeyError):
            peak = max(peak, status_mb(child.pid, "VmHWM"))
        time.sleep(SAMPLE_EVERY)
    elapsed = time.perf_counter() - started
    stderr = child.stderr.read()
    child.stderr.close()
    if child.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{stderr}")
    return elapsed, peak, stderr


# --- the web endpoint -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "notifwatch.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--timeout",
            "900",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=child_env(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, _, _ = request(port, "/healthz?part=database")
            if status == 200:
                return server
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def status_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Sampler(threading.Thread):
    """The largest VmRSS of a process, read every 50 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples = pid, 0.0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, status_mb(self.pid, "VmRSS"))
            self.samples += 1
            self.done.wait(SAMPLE_EVERY)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak


def request(
    port: int, path: str, *, cookie: str = "", method: str = "GET", body: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """One small HTTP/1.0 request: (status, headers, body)."""
    lines = [f"{method} {path} HTTP/1.0", "Host: 127.0.0.1"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if body:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(raw)
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), "")
        headers[name.strip().lower()] += ("; " if headers[name.strip().lower()] else "") + (
            value.strip()
        )
    return int(status_line.split()[1]), headers, content


def log_in(port: int) -> str:
    """Sign in through the login form, as a person does: the session cookie to send."""
    _, headers, page = request(port, "/login/")
    csrf = re.search(r"csrftoken=([^;]+)", headers["set-cookie"]).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": AUDITOR[0], "password": AUDITOR[1]}
    )
    status, headers, _ = request(
        port, "/login/", method="POST", body=form, cookie=f"csrftoken={csrf}"
    )
    session = re.search(r"sessionid=([^;]+)", headers.get("set-cookie", ""))
    if status != 302 or not session:
        raise SystemExit(f"could not sign in as {AUDITOR[0]} (HTTP {status})")
    return f"sessionid={session.group(1)}"


def stream(port: int, path: str, cookie: str) -> dict:
    """GET a large response, counting its lines as they arrive (HTTP/1.0: a plain body, no
    chunk framing to parse or to count as lines)."""
    buffer = bytearray(1 << 20)
    started = time.perf_counter()
    first_byte = first_row = None
    head = b""
    lines = size = 0
    with socket.create_connection(("127.0.0.1", port), timeout=900) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        while True:
            n = sock.recv_into(buffer)
            if not n:
                break
            now = time.perf_counter() - started
            if first_byte is None:
                first_byte = now
            if head is not None:
                head += bytes(buffer[:n])
                if b"\r\n\r\n" not in head:
                    continue
                head, _, rest = head.partition(b"\r\n\r\n")
                status = int(head.split()[1])
                header_text = head.decode("latin-1")
                head = None
                lines += rest.count(b"\n")
                size += len(rest)
            else:
                lines += buffer.count(b"\n", 0, n)
                size += n
            if first_row is None and lines >= 2:
                first_row = now
    return {
        "status": status,
        "headers": header_text,
        "seconds": time.perf_counter() - started,
        "first_byte": first_byte,
        "first_row": first_row,
        "lines": lines,
        "bytes": size,
    }


# --- the search page's filtered lists ---------------------------------------------------------


def time_pages(count: int, now, explain: bool) -> None:
    """The filtered list's first page and a deep one (half-way down), through the test client."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from notifwatch.deliveries.models import Notification
    from notifwatch.lib.paging import time_cursor

    client = Client()
    client.force_login(get_user_model().objects.get(username=AUDITOR[0]))
    middle = Notification.objects.order_by("-last_event_at", "-id")[count // 2]
    day = (now - timedelta(days=2)).date().isoformat()
    cases = [
        ("channel=sms", {"channel": "sms"}),
        ("channel=sms & status=bounced", {"channel": "sms", "status": "bounced"}),
        ("status=complained (0.1%)", {"status": "complained"}),
        ("source=sendgrid (a provider, 0.3%)", {"source": "sendgrid"}),
        ("from=to=one day", {"from": day, "to": day}),
        ("q=cus_123 & channel=email", {"q": "cus_123", "channel": "email"}),
        # The worst case: a filter no index serves, matching nothing.
        ("channel=webhook (matches none)", {"channel": "webhook"}),
    ]
    print(
        f"Search page, filtered lists (test client, median of 5; deep = before the {count // 2:,}th):"
    )
    for label, params in cases:
        timings = {}
        plans = []
        for depth, extra in (
            ("first", {}),
            ("deep", {"before": time_cursor(middle.last_event_at, middle.pk)}),
        ):
            query = urllib.parse.urlencode(params | extra)

            def get(query=query):
                response = client.get(f"/notifications/?{query}")
                assert response.status_code == 200, response.status_code
                return response

            get()
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                get()
                runs.append((time.perf_counter() - started) * 1000)
            timings[depth] = statistics.median(runs)
            if connection.vendor == "postgresql":
                with CaptureQueriesContext(connection) as queries:
                    get()
                sql = next(
                    q["sql"]
                    for q in queries
                    if 'FROM "deliveries_notification"' in q["sql"] and "LIMIT" in q["sql"]
                )
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    plan = [row[0] for row in cursor.fetchall()]
                plans.append((depth, plan))
        scans = sorted(
            {
                f"whole table {name}" if how.startswith("Seq") else name
                for _, plan in plans
                for line in plan
                for how, name in SCAN.findall(line)
            }
        )
        used = f"  plan reads: {', '.join(scans)}" if scans else ""
        print(
            f"  {label:<36} first {timings['first']:6.1f} ms  deep {timings['deep']:6.1f} ms{used}"
        )
        if explain:
            for depth, plan in plans:
                print(f"    -- {depth} page plan")
                print("\n".join("    " + line for line in plan))


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the last run's scratch data")
    parser.add_argument("--explain", action="store_true", help="print the search pages' plans")
    parser.add_argument("--skip-pages", action="store_true", help="only the exports")
    args = parser.parse_args()

    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    url = scratch_database(os.environ.get("DATABASE_URL"), SCRATCH, reuse=args.reuse)
    setup_django(url)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.http import QueryDict
    from django.utils import timezone

    from notifwatch.accounts.actions import create_user
    from notifwatch.audit import exports
    from notifwatch.deliveries.filters import NotificationFilter
    from notifwatch.deliveries.lookup import recorded_notifications
    from notifwatch.deliveries.models import Notification

    now = timezone.now().replace(microsecond=0)
    if not (args.reuse and Notification.objects.exists()):
        started = time.perf_counter()
        stats = seed(args.notifications, now)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        print(
            f"database: {connection.vendor}; seeded in {time.perf_counter() - started:.0f}s: "
            + ", ".join(f"{k} {v:,}" for k, v in stats.items())
        )
    else:
        now = Notification.objects.order_by("-last_event_at").values_list(
            "last_event_at", flat=True
        )[0]
        print(f"database: {connection.vendor}; reusing the seeded data (up to {now:%c})")
    if not get_user_model().objects.filter(username=AUDITOR[0]).exists():
        create_user(username=AUDITOR[0], role="auditor", actor=None, password=AUDITOR[1])
    count = Notification.objects.count()
    since = (now - timedelta(days=9)).date().isoformat()  # before every seeded notification
    web_path = f"/notifications/export.csv?from={since}"
    print(f"notifications: {count:,}; web export: GET {web_path}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")

    # Each export right after a bare iteration of its own query: these machines drift, so
    # the ratio of two runs side by side is the figure, not either rate alone.
    results: dict[str, dict] = {}
    command_query = exports.notification_rows(None, None, None)
    web_query = exports.notification_values(
        NotificationFilter(QueryDict(f"from={since}"), queryset=recorded_notifications()).qs
    )
    _, seconds = bare(command_query)  # untimed: brings the table back into the page cache
    print(f"  warm-up pass over the command's query: {seconds:.1f}s")
    measure_bare(results, "bare, command's query", command_query)
    measure_command(results, now, count)
    measure_bare(results, "bare, command's query", command_query)
    port = free_port()
    server = start_gunicorn(port)
    try:
        worker, cookie = warm_up(port, server, since)
        measure_bare(results, "bare, web's query", web_query)
        measure_web(results, port, worker, cookie, web_path, count)
        measure_bare(results, "bare, web's query", web_query)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print_table(results)
    if not args.skip_pages:
        time_pages(count, now, args.explain)


def measure_bare(results: dict, name: str, queryset) -> None:
    """A bare iteration, run just before and just after its export: the mean of the two is
    the reference (the page cache of these VMs comes and goes under the database)."""
    rows, seconds = bare(queryset)
    print(f"  {name}: {rows:,} rows in {seconds:.1f}s")
    if name not in results:
        results[name] = {"rows": rows, "seconds": seconds, "runs": [seconds]}
        return
    runs = results[name]["runs"] + [seconds]
    results[name] |= {"seconds": statistics.mean(runs), "runs": runs}


def measure_command(results: dict, now, count: int) -> None:
    """The command to a scratch file; its idle size is the same command exporting 0 rows."""
    scratch = Path(tempfile.mkdtemp(prefix="nw-export-bench-"))
    try:
        output = scratch / "notifications.csv"
        future = (now + timedelta(days=1)).date().isoformat()
        idle_seconds, idle_mb, _ = run_command(
            ["export", "notifications", "--since", future, "--output", str(output)]
        )
        seconds, peak_mb, stderr = run_command(
            ["export", "notifications", "--format", "csv", "--output", str(output)]
        )
        with open(output, "rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
        written = int(re.search(r"(\d+) notifications rows written", stderr).group(1))
        assert written == count and lines == count + 1, (written, lines)
        results["command"] = {
            "rows": written,
            "seconds": seconds,
            "idle": idle_mb,
            "peak": peak_mb,
            "bare": "bare, command's query",
            "start": idle_seconds,
            "note": f"{output.stat().st_size / 1e6:,.0f} MB written; seconds include the "
            f"process's start: {idle_seconds:.1f}s for the same command exporting 0 rows",
        }
        print(f"  command: {written:,} rows, {lines:,} lines in {seconds:.1f}s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def warm_up(port: int, server: subprocess.Popen, since: str) -> tuple[int, str]:
    """Sign in, load a filtered page and export a few rows: (worker pid, session cookie)."""
    worker = worker_pid(server.pid)
    cookie = log_in(port)
    status, _, page = request(port, f"/notifications/?from={since}&channel=sms", cookie=cookie)
    assert status == 200 and b"Results of the filters" in page, status
    status, _, small = request(
        port, f"/notifications/export.csv?from={since}&q=cus_1", cookie=cookie
    )
    assert status == 200 and small.startswith(b"source,notification_key,"), status
    return worker, cookie


def measure_web(results: dict, port: int, worker: int, cookie: str, path: str, count: int):
    from notifwatch.audit.models import AuditEntry

    time.sleep(0.5)
    idle_mb = status_mb(worker, "VmRSS")
    sampler = Sampler(worker)
    sampler.start()
    got = stream(port, path, cookie)
    peak_mb = max(sampler.stop(), status_mb(worker, "VmRSS"))
    hwm_mb = status_mb(worker, "VmHWM")
    assert got["status"] == 200, got["headers"]
    assert got["lines"] == count + 1, got["lines"]
    entry = AuditEntry.objects.filter(action="export.downloaded").latest("id")
    assert entry.new["rows"] == count and entry.new["completed"], entry.new
    results["web"] = {
        "rows": got["lines"] - 1,
        "seconds": got["seconds"],
        "idle": idle_mb,
        "peak": peak_mb,
        "bare": "bare, web's query",
        "note": f"first byte {got['first_byte'] * 1000:.0f} ms, first data row "
        f"{got['first_row'] * 1000:.0f} ms, {got['bytes'] / 1e6:,.0f} MB, worker VmHWM "
        f"{hwm_mb:.0f} MB, {sampler.samples} RSS samples",
    }
    print(
        f"  web: {got['lines']:,} lines (header + {got['lines'] - 1:,} rows) in "
        f"{got['seconds']:.1f}s; audit entry: {entry.new['rows']:,} rows, "
        f"filters {entry.new['filters']}"
    )


def print_table(results: dict[str, dict]) -> None:
    print()
    print(
        f"{'':<22}{'rows':>11}{'seconds':>9}{'rows/s':>10}{'% of bare':>11}"
        f"{'idle MB':>9}{'peak MB':>9}{'growth MB':>11}  verdict"
    )
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        line = f"{name:<22}{r['rows']:>11,}{r['seconds']:>9.1f}{rate:>10,.0f}"
        if "bare" not in r:
            print(line)
            runs = ", ".join(f"{seconds:.1f}s" for seconds in r["runs"])
            print(f"{'':<22}(mean of the runs before and after its export: {runs})")
            continue
        base = results[r["bare"]]
        base_rate = base["rows"] / base["seconds"]
        share = 100 * rate / base_rate
        growth = r["peak"] - r["idle"]
        misses = []
        if share < TARGET_SHARE:
            misses.append(f"rate < {TARGET_SHARE}%")
        if growth >= TARGET_GROWTH_MB:
            misses.append(f"growth ≥ {TARGET_GROWTH_MB} MB")
        verdict = "MISSED: " + ", ".join(misses) if misses else "meets both targets"
        print(f"{line}{share:>10.0f}%{r['idle']:>9.0f}{r['peak']:>9.0f}{growth:>11.1f}  {verdict}")
        note = r["note"]
        if "start" in r:
            net = r["rows"] / (r["seconds"] - r["start"])
            note += f"; without it {net:,.0f} rows/s, {100 * net / base_rate:.0f}% of bare"
        print(f"{'':<22}({note})")
    print(
        f"targets: ≥ {TARGET_SHARE}% of the bare iteration's rows/s; peak < idle + "
        f"{TARGET_GROWTH_MB} MB"
    )


if __name__ == "__main__":
    main()
