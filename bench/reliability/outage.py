"""outage: PostgreSQL stopped for 10 s under load, then restarted (the harness's private cluster).

Client processes post small batches of events to the events API without pause throughout.
While the database is down every answer must be `503` with `Retry-After` (connection errors
are counted apart); at any time, an answer other than 200/202 or 503-with-Retry-After is a
failure; every event of a request answered 2xx must be in the database afterwards. Then the
requests that got no 2xx are sent once more, as a sender would, and every event sent must be
stored: nothing lost. Recovery time is from `pg_ctl start` returning to the first 200 answer.
"""

import argparse
import json
import multiprocessing
import random
import time
from collections import Counter
from contextlib import suppress

from bench.reliability import payloads
from bench.reliability.client import Request, Sender
from bench.reliability.server import Credentials, log_excerpt, running_app, wait_for_received

REQUESTS_PER_SECOND = 25  # per client process: a busy sender, not a flood
# Rows a crash left `received` are retried by the worker after 60 s, on a one-minute schedule.
DRAIN_SECONDS = 180


def load(base_url: str, credentials: Credentials, worker: int, stop, results) -> None:
    """Post 1-3 new events per request until told to stop; report every answer."""
    rng = random.Random(worker)
    sender = Sender(base_url, credentials, timeout=30)
    sent: list[tuple] = []
    number = 0
    while not stop.is_set():
        begun = time.monotonic()
        size = rng.randint(1, 3)
        events = [
            payloads.canonical_event(f"out{worker}", number + offset, rng) for offset in range(size)
        ]
        number += size
        answer = sender.send(Request("api", payloads.json_bytes(events)))
        sent.append(
            (
                answer.sent_at,
                answer.answered_at,
                answer.status,
                answer.retry_after,
                answer.error or answer.body[:200].decode("utf-8", "replace"),
                [event["event_id"] for event in events],
                payloads.json_bytes(events),
            )
        )
        time.sleep(max(0.0, 1 / REQUESTS_PER_SECOND - (time.monotonic() - begun)))
    sender.close()
    results.put(sent)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability outage")
    parser.add_argument("--quick", action="store_true", help="shorter load before and after")
    parser.add_argument("--down", type=float, default=10, help="seconds PostgreSQL stays down")
    parser.add_argument("--before", type=float, help="seconds of load before (default 5)")
    parser.add_argument("--after", type=float, help="seconds of load after recovery (default 5)")
    parser.add_argument("--processes", type=int, default=3, help="client processes")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and logs")
    args = parser.parse_args(argv)
    before = args.before or (2 if args.quick else 5)
    after = args.after or (2 if args.quick else 5)
    started = time.monotonic()

    with running_app("outage", keep=args.keep) as app:
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        results = context.Queue()
        clients = [
            context.Process(target=load, args=(app.base_url, app.credentials, index, stop, results))
            for index in range(args.processes)
        ]
        for client in clients:
            client.start()
        time.sleep(before)
        close_django_connections()
        app.cluster.stop(mode="immediate")
        down_at = time.time()
        print(
            f"  PostgreSQL stopped (immediate) at +{time.monotonic() - started:.1f} s", flush=True
        )
        time.sleep(args.down)
        restart_at = time.time()
        restart_took = app.cluster.start()
        up_at = time.time()
        print(f"  PostgreSQL started again in {restart_took:.2f} s", flush=True)
        time.sleep(after)
        stop.set()
        answers = []
        for _ in clients:
            with suppress(Exception):
                answers += results.get(timeout=90)
        for client in clients:
            client.join(timeout=30)
            if client.is_alive():
                client.kill()  # our own client process, by its handle
        worker_state = "running"
        if app.worker and app.worker.process.poll() is not None:
            worker_state = f"exited with status {app.worker.process.returncode}"
            app.worker.start()  # as systemd's Restart=always would
        wait_for_received(DRAIN_SECONDS)
        acknowledged_then = stored_event_ids()
        resent = resend(app, answers)
        problems, figures = check(answers, acknowledged_then, resent, down_at, restart_at, up_at)
        if worker_state != "running":
            # run_worker waits out an outage; a worker that exited needs a person to restart it.
            problems.append(f"the worker {worker_state} during the outage")
        figures["log"] = log_excerpt(app.server.log, limit=5)
        figures["worker"] = worker_state
        app.keep_logs = bool(problems) or worker_state != "running"
    figures["took"] = time.monotonic() - started
    return report(problems, figures, args.down)


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


def resend(app, answers: list[tuple]) -> list[tuple[int, list[str]]]:
    """What a sender does with a 503 or no answer: send it again (once, after recovery)."""
    sender = Sender(app.base_url, app.credentials)
    again = []
    deadline = time.time() + 120
    for _sent_at, _answered_at, status, _retry, _error, event_ids, body in answers:
        if 200 <= status < 300 or time.time() > deadline:
            continue
        answer = sender.send(Request("api", body))
        again.append((answer.status, event_ids))
    sender.close()
    return again


def stored_event_ids() -> set[str]:
    from notifwatch.deliveries.models import DeliveryEvent

    return set(
        DeliveryEvent.objects.filter(source__slug="rel-api").values_list("event_id", flat=True)
    )


def raw_state(answer_body: str) -> str:
    """The state of the raw row an answer names ({"stored": pk, ...})."""
    from notifwatch.ingest.models import RawEvent

    try:
        pk = json.loads(answer_body)["stored"]
    except (ValueError, KeyError, TypeError):
        return "no raw row named"
    raw = RawEvent.objects.filter(pk=pk).values("outcome", "reason").first()
    return f"raw row {pk}: {raw}" if raw else f"raw row {pk} does not exist"


def check(answers, stored: set[str], resent, down_at: float, restart_at: float, up_at: float):
    """`stored`: the events in the database before the resend (what the answers promised)."""
    from notifwatch.ingest.models import Outcome, RawEvent

    problems: list[str] = []
    statuses = Counter()
    while_down = Counter()
    unanswered = 0
    bad_examples = []
    acknowledged_missing = 0
    acknowledged_events = 0
    stored_after_503 = 0
    first_ok_after = None
    missing_examples: list[str] = []
    for sent_at, answered_at, status, retry_after, error, event_ids, _body in answers:
        statuses[status] += 1
        if status == 0:
            unanswered += 1
        down = sent_at >= down_at and answered_at <= restart_at
        if down:
            while_down["no answer" if status == 0 else f"{status}"] += 1
            if status not in (0, 503) or (status == 503 and not retry_after):
                bad_examples.append(f"while down: {status} Retry-After={retry_after!r} {error}")
        ok = 200 <= status < 300
        if status == 503 and not retry_after:
            bad_examples.append("503 without Retry-After")
        elif status not in (0, 503) and not ok:
            bad_examples.append(f"answer {status} {error}")
        if ok:
            acknowledged_events += len(event_ids)
            missing = [e for e in event_ids if e not in stored]
            acknowledged_missing += len(missing)
            if missing and len(missing_examples) < 3:
                missing_examples.append(f"{status} {error} -> {raw_state(error)}")
            if sent_at >= up_at and (first_ok_after is None or answered_at < first_ok_after):
                first_ok_after = answered_at
        elif status == 503 and all(e in stored for e in event_ids):
            stored_after_503 += 1
    if bad_examples:
        problems.append(f"{len(bad_examples)} unacceptable answers, e.g. {bad_examples[:3]}")
    if acknowledged_missing:
        problems.append(f"{acknowledged_missing} events of requests answered 2xx are missing")
        problems += [f"  e.g. answered {example}" for example in missing_examples]
    sent_events = {e for answer in answers for e in answer[5]}
    stored = stored_event_ids()
    lost = sorted(sent_events - stored)
    if lost:
        problems.append(f"{len(lost)} events lost after resending, e.g. {lost[:3]}")
    if first_ok_after is None:
        problems.append("no 200 answer after PostgreSQL came back")
    received = RawEvent.objects.filter(outcome=Outcome.RECEIVED).count()
    if received:
        problems.append(f"{received} raw rows left received")
    resent_statuses = Counter(status for status, _ in resent)
    if set(resent_statuses) - {200}:
        problems.append(f"resent requests answered {dict(resent_statuses)}")
    figures = {
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "while_down": dict(while_down),
        "unanswered": unanswered,
        "acknowledged_events": acknowledged_events,
        "acknowledged_missing": acknowledged_missing,
        "stored_after_503": stored_after_503,
        "sent_events": len(sent_events),
        "stored": len(stored & sent_events),
        "lost": len(lost),
        "resent": dict(resent_statuses),
        "received": received,
        "recovery": None if first_ok_after is None else first_ok_after - up_at,
    }
    return problems, figures


def report(problems: list[str], f: dict, down: float) -> int:
    print(f"  requests: {f['requests']}, answers by status: {f['statuses']} (0 = no answer)")
    print(f"  while PostgreSQL was down ({down:.0f} s): {f['while_down']}")
    print(
        f"  acknowledged (2xx): {f['acknowledged_events']} events, "
        f"{f['acknowledged_missing']} missing afterwards"
    )
    print(
        f"  503 answers whose events were stored anyway (a resend is then a duplicate): "
        f"{f['stored_after_503']}"
    )
    print(f"  resent after recovery: {f['resent']}")
    print(f"  events sent {f['sent_events']}, stored {f['stored']}, lost {f['lost']}")
    recovery = "never" if f["recovery"] is None else f"{f['recovery']:.2f} s"
    print(f"  recovery (PostgreSQL started -> first 200): {recovery}; worker: {f['worker']}")
    if f["worker"] != "running":
        print(f"  the worker {f['worker']} during the outage (restarted; see worker.log)")
    for line in f["log"]:
        print(f"  server log: {line}")
    for line in problems:
        print(f"  FAIL {line}")
    verdict = "FAIL" if problems else "PASS"
    down_503 = f["while_down"].get("503", 0)
    no_answer = f["while_down"].get("no answer", 0)
    print(
        f"outage: {verdict} down={down:.0f}s 503-while-down={down_503} "
        f"no-answer-while-down={no_answer} "
        f"other-while-down={sum(f['while_down'].values()) - down_503 - no_answer} "
        f"acknowledged={f['acknowledged_events']} missing={f['acknowledged_missing']} "
        f"lost={f['lost']} recovery={recovery} ({f['took']:.0f} s)"
    )
    return 1 if problems else 0
