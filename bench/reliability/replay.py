"""replay: N distinct events over the API and provider webhooks, then the whole burst replayed
10 times from several processes at once. Stored must equal sent; every repeat must be counted.

Figures: `sent` distinct events, `stored` delivery events found in the database, `duplicates
counted` the sum of the events' duplicate counters against replays x sent (the notifications'
duplicate_events must sum to the same), raw rows by outcome (the first burst `parsed`, every
replayed request `duplicate`, none `received`), answers by status (all 200; no 5xx).
"""

import argparse
import random
import time
from collections import Counter

from bench.reliability import payloads
from bench.reliability.client import MARK_HEADER, Request, send_in_parallel
from bench.reliability.server import running_app, wait_for_received

# Share of the events each endpoint carries.
MIX = {"api": 35, "sw": 10, "sendgrid": 15, "postmark": 10, "mailgun": 10, "twilio": 20}


def build_burst(total: int, seed: int) -> tuple[list[Request], Counter]:
    """Requests carrying `total` distinct events; how many each endpoint carries."""
    rng = random.Random(seed)
    shares = {name: total * weight // sum(MIX.values()) for name, weight in MIX.items()}
    shares["api"] += total - sum(shares.values())
    requests: list[Request] = []
    for endpoint, count in shares.items():
        number = 0
        while number < count:
            size = batch_size(endpoint, rng, count - number)
            requests.append(request_for(endpoint, "rp", range(number, number + size), rng))
            number += size
    rng.shuffle(requests)
    return requests, Counter(shares)


def batch_size(endpoint: str, rng: random.Random, left: int) -> int:
    if endpoint in ("postmark", "mailgun", "twilio"):
        return 1  # these providers post one event per call
    if endpoint == "api" and rng.random() < 0.4:
        return 1
    return min(left, rng.randint(2, 40))


def request_for(endpoint: str, prefix: str, numbers: range, rng: random.Random) -> Request:
    if endpoint in ("api", "sw"):
        events = [payloads.canonical_event(f"{prefix}{endpoint}", n, rng) for n in numbers]
        if len(events) == 1 and rng.random() < 0.5:
            return Request(endpoint, payloads.json_bytes(events[0]))
        if endpoint == "api" and rng.random() < 0.3:
            lines = b"\n".join(payloads.json_bytes(event) for event in events) + b"\n"
            return Request(endpoint, lines, content_type="application/x-ndjson")
        return Request(endpoint, payloads.json_bytes(events))
    if endpoint == "sendgrid":
        return Request(
            endpoint, payloads.json_bytes([payloads.sendgrid_event(prefix, n) for n in numbers])
        )
    (number,) = numbers
    if endpoint == "postmark":
        return Request(endpoint, payloads.json_bytes(payloads.postmark_event(prefix, number)))
    if endpoint == "mailgun":
        return Request(endpoint, payloads.mailgun_body(payloads.mailgun_event_data(prefix, number)))
    params = payloads.twilio_params(prefix, number)
    return Request(
        endpoint, payloads.twilio_body(params), content_type="application/x-www-form-urlencoded"
    )


def marked(requests: list[Request], copy: int) -> list[Request]:
    return [
        Request(r.endpoint, r.body, r.content_type, r.headers, r.twilio_params, f"{copy}:{i}")
        for i, r in enumerate(requests)
    ]


def split(requests: list[Request], parts: int) -> list[list[Request]]:
    return [requests[index::parts] for index in range(parts) if requests[index::parts]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability replay")
    parser.add_argument("--quick", action="store_true", help="500 events, 3 processes")
    parser.add_argument("--events", type=int, help="distinct events to send (default 5000)")
    parser.add_argument("--replays", type=int, default=10, help="times the burst is replayed")
    parser.add_argument("--processes", type=int, help="client processes (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, help="seconds for sending (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and logs")
    args = parser.parse_args(argv)
    total = args.events or (500 if args.quick else 5000)
    processes = args.processes or (3 if args.quick else 5)
    deadline = time.time() + (args.deadline or (240 if args.quick else 900))

    started = time.monotonic()
    requests, expected = build_burst(total, args.seed)
    print(
        f"replay: {total} distinct events in {len(requests)} requests "
        f"({', '.join(f'{k} {v}' for k, v in expected.items())}), replayed {args.replays}x "
        f"from {processes} processes",
        flush=True,
    )
    with running_app("replay", keep=args.keep) as app:
        answers: list = []
        phase = time.monotonic()
        first = send_in_parallel(
            app.base_url, app.credentials, split(marked(requests, 0), processes), deadline
        )
        answers += first
        print(
            f"  first burst: {len(first)} requests in {time.monotonic() - phase:.1f} s", flush=True
        )
        copies = [r for copy in range(1, args.replays + 1) for r in marked(requests, copy)]
        random.Random(args.seed + 1).shuffle(copies)
        phase = time.monotonic()
        again = send_in_parallel(app.base_url, app.credentials, split(copies, processes), deadline)
        answers += again
        print(f"  replays: {len(again)} requests in {time.monotonic() - phase:.1f} s", flush=True)
        wait_for_received(150)
        problems = check(app, requests, expected, answers, args.replays)
        app.keep_logs = bool(problems)
    took = time.monotonic() - started
    return report(problems, total, expected, args.replays, took)


FIGURES: dict = {}


def check(app, requests, expected: Counter, answers, replays: int) -> list[str]:
    from django.db.models import Count, Sum

    from notifwatch.deliveries.models import DeliveryEvent, Notification
    from notifwatch.ingest.models import RawEvent

    problems = []
    sent_requests = len(requests) * (replays + 1)
    statuses = Counter(answer.status for _, answer in answers)
    errors = Counter(answer.error.split(":")[0] for _, answer in answers if answer.error)
    FIGURES["answers"] = dict(sorted(statuses.items()))
    if len(answers) < sent_requests:
        problems.append(f"deadline: only {len(answers)} of {sent_requests} requests were sent")
    if set(statuses) - {200}:
        bad = {code: n for code, n in statuses.items() if code != 200}
        problems.append(f"answers other than 200: {bad} (0 = no answer: {dict(errors)})")
        for mark, answer in answers:
            if answer.status != 200:
                problems.append(f"  e.g. request {mark}: {answer.status} {answer.body[:200]!r}")
                break
    five = sum(n for code, n in statuses.items() if code >= 500)

    slugs = app.credentials.slugs
    by_slug = {slug: name for name, slug in slugs.items()}
    stored = Counter()
    duplicates = Counter()
    for row in (
        DeliveryEvent.objects.values("source__slug")
        .annotate(n=Count("id"), d=Sum("duplicate_count"))
        .order_by()
    ):
        name = by_slug.get(row["source__slug"], row["source__slug"])
        stored[name] = row["n"]
        duplicates[name] = row["d"] or 0
    notification_repeats = Notification.objects.aggregate(d=Sum("duplicate_events"))["d"] or 0
    for name, count in expected.items():
        if stored[name] != count:
            problems.append(f"{name}: {stored[name]} delivery events stored, {count} sent")
        if duplicates[name] != replays * count:
            problems.append(
                f"{name}: duplicate_count sums to {duplicates[name]}, expected {replays * count}"
            )
    if notification_repeats != replays * sum(expected.values()):
        problems.append(
            f"notifications' duplicate_events sum to {notification_repeats}, "
            f"expected {replays * sum(expected.values())}"
        )

    outcomes = Counter()
    wrong = []
    for outcome, headers, reason in RawEvent.objects.values_list("outcome", "headers", "reason"):
        mark = (headers or {}).get(MARK_HEADER, "")
        copy = mark.split(":")[0] if mark else "?"
        want = "parsed" if copy == "0" else "duplicate"
        outcomes[outcome] += 1
        if outcome != want and len(wrong) < 5:
            wrong.append(f"  raw row of request {mark or '(unmarked)'}: {outcome} {reason[:150]}")
    if outcomes.get("received"):
        problems.append(f"{outcomes['received']} raw rows left received")
    if outcomes.get("parsed", 0) != len(requests) or outcomes.get("duplicate", 0) != (
        len(requests) * replays
    ):
        problems.append(
            f"raw rows: {dict(outcomes)}, expected parsed {len(requests)}, "
            f"duplicate {len(requests) * replays}"
        )
        problems += wrong
    FIGURES.update(
        stored=sum(stored.values()),
        stored_by=dict(stored),
        duplicates=sum(duplicates.values()),
        notification_repeats=notification_repeats,
        raw=dict(outcomes),
        five=five,
        received=outcomes.get("received", 0),
    )
    return problems


def report(problems: list[str], total: int, expected: Counter, replays: int, took: float) -> int:
    f = FIGURES
    print(f"  answers by status: {f.get('answers')}")
    print(f"  delivery events stored: {f.get('stored')} ({f.get('stored_by')})")
    print(
        f"  duplicates counted: events {f.get('duplicates')}, notifications "
        f"{f.get('notification_repeats')} (expected {replays * total})"
    )
    print(f"  raw rows by outcome: {f.get('raw')}")
    for line in problems:
        print(f"  FAIL {line}")
    verdict = "FAIL" if problems else "PASS"
    print(
        f"replay: {verdict} sent={total} stored={f.get('stored')} "
        f"duplicates counted={f.get('duplicates')}/{replays * total} 5xx={f.get('five')} "
        f"received={f.get('received')} lost={max(0, total - (f.get('stored') or 0))} "
        f"({took:.0f} s)"
    )
    return 1 if problems else 0
