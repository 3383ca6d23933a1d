"""shop-sender: the in-house sender's JSON-lines log of its SendGrid, Postmark and Twilio sends.

It also decides what each provider reports afterwards (`Send.downstream`), which the provider
modules turn into webhook bodies.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifwatch.demo.formats import b62, hexs, iso, secs, uuid4
from notifwatch.demo.scenarios import assign, customer_fields, ensure_inside, missing_form
from notifwatch.demo.traffic import LogFile, shipped_at
from notifwatch.demo.world import Customer, Window, World, calm_time, corporate

SHOP_ORDER_FLOW = (
    # (purpose, channel, provider, probability, days after the order)
    ("order_confirmation", "email", "sendgrid", 1.00, 0),
    ("order_shipped", "email", "sendgrid", 0.65, 1),
    ("order_shipped_sms", "sms", "twilio", 0.35, 1),
    ("out_for_delivery_sms", "sms", "twilio", 0.45, 2),
    ("order_feedback_request", "email", "sendgrid", 0.30, 4),
)
# Account messages: (purpose, channel, provider, weight).
SHOP_ACCOUNT = (
    ("password_reset", "email", "postmark", 5),
    ("email_verification", "email", "postmark", 4),
    ("login_code_sms", "sms", "twilio", 3),
)
# Scenario tables: (scenario, share of the eligible items, minimum count). Minimums keep every
# failure family present in small demo sets (tests use a few hundred notifications).
SHOP_SCENARIOS = (
    ("duplicate_send", 0.003, 2),
    ("retry_429", 0.006, 2),
    ("queued_stuck", 0.006, 1),
    ("opted_out", 0.003, 1),
)
SHOP_SMS_SCENARIOS = (("sync_21614", 0.01, 1), ("opted_out", 0.015, 1))
SENDGRID_SCENARIOS = (
    ("hard_bounce", 0.025, 2),
    ("spam_block", 0.012, 2),
    ("mailbox_full", 0.005, 1),
    ("unsubscribed", 0.01, 1),
    ("complaint", 0.003, 1),
    ("deferred_then_delivered", 0.025, 2),
    ("processed_only", 0.005, 1),
    ("deferred_pending", 0.004, 1),
    ("unclassified", 0.001, 1),
    ("out_of_order", 0.01, 1),
)
POSTMARK_SCENARIOS = (
    ("hard_bounce", 0.015, 1),
    ("soft_bounce", 0.008, 1),
    ("complaint", 0.003, 1),
    ("transient", 0.008, 1),
    ("repeat", 0.005, 1),
    ("subscription_change", 0.004, 1),
)
TWILIO_SCENARIOS = (
    ("unreachable", 0.02, 1),
    ("landline", 0.01, 1),
    ("filtered", 0.012, 1),
    ("stop", 0.01, 1),
    ("unknown", 0.002, 1),
    ("no_dlr", 0.025, 1),
    ("dup_callback", 0.01, 1),
    ("out_of_order", 0.015, 1),
)


@dataclass
class Send:
    """One notification the shop sender sent through SendGrid, Postmark or Twilio."""

    at: datetime
    purpose: str
    channel: str
    provider: str
    customer: Customer
    refs: dict[str, str]
    form: str = "ok"  # how the customer id is written
    scenario: str = "ok"  # what happened when the sender called the provider
    downstream: str = "ok"  # what the provider reported afterwards
    key: str = ""
    notif_id: str = ""
    accepted: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return self.customer.id if self.form == "ok" else ""

    @property
    def recipient(self) -> str:
        return self.customer.email_at(self.at) if self.channel == "email" else self.customer.phone


def shop_sends(world: World, count: int) -> list[Send]:
    rng = world.rng("shop")
    sends: list[Send] = []
    order_number = 118000
    account_weights = [w for *_, w in SHOP_ACCOUNT]
    household = iter([world.customers[0], world.customers[1]] * 2)
    # The customer who changed their email address ordered the day before and two days after.
    mover = world.customers[3]
    for at in (mover.moved_at - timedelta(hours=22), mover.moved_at + timedelta(days=1, hours=5)):
        order_number += 1
        order_id = f"ORD-{world.now.year}-{order_number}"
        send = Send(at, "order_confirmation", "email", "sendgrid", mover, {"order_id": order_id})
        send.key = f"ord-{order_number}:order_confirmation:email"
        sends.append(send)
    while len(sends) < count:
        if rng.random() < 0.78:
            order_number += 1
            customer = next(household, None) or world.pick_customer(rng)
            # Orders from the days before the week still get their shipping notices in it.
            ordered = world.pick_time(rng, "retail", days_before=4)
            order_id = f"ORD-{world.now.year}-{order_number}"
            for purpose, channel, provider, chance, days in SHOP_ORDER_FLOW:
                at = ordered + timedelta(days=days, minutes=(rng.random() - 0.5) * 180 * bool(days))
                if rng.random() < chance and world.start <= at < world.now:
                    send = Send(at, purpose, channel, provider, customer, {"order_id": order_id})
                    send.key = f"ord-{order_number}:{purpose}:{channel}"
                    sends.append(send)
        else:
            purpose, channel, provider, _ = rng.choices(SHOP_ACCOUNT, account_weights)[0]
            customer = world.pick_customer(rng)
            send = Send(world.pick_time(rng, "retail"), purpose, channel, provider, customer, {})
            send.key = f"usr-{customer.id[4:]}:{purpose}:{channel}:{len(sends)}"
            sends.append(send)
    for send in sends:
        send.form = missing_form(rng)
        send.notif_id = f"ntf_{b62(rng, 6).upper()}"
    calm = [s for s in sends if world.calm(s.at) and s.at < world.mapping_break]
    assign(rng, calm, SHOP_SCENARIOS, "scenario")
    assign(rng, [s for s in calm if s.channel == "sms"], SHOP_SMS_SCENARIOS, "scenario")
    for send in sends:
        if send.scenario == "queued_stuck":
            send.at = calm_time(world, rng, 26, 96)
    ensure_inside(
        rng, sends, world.outage, lambda s: s.provider == "sendgrid", 4, "scenario", "outage"
    )
    ensure_inside(
        rng, sends, world.auth, lambda s: s.provider == "twilio", 3, "scenario", "auth_401"
    )
    after_auth = Window(world.auth.end, world.rejected.end)
    ensure_inside(rng, sends, after_auth, lambda s: s.provider == "twilio", 3)
    # Sends through Postmark go on after it falls silent.
    silent = Window(world.silence, world.mapping_break)
    ensure_inside(rng, sends, silent, lambda s: s.provider == "postmark", 3)
    sends.sort(key=lambda s: s.at)
    assign_downstream(world, rng, sends)
    sends.sort(key=lambda s: s.at)
    for send in sends:
        if "order_id" in send.refs:
            world.orders[send.refs["order_id"]] = send.customer
    return sends


def move_order(sends: list[Send], send: Send, customer: Customer) -> None:
    """Give `send` to another customer, with every other message about its order: an order
    belongs to one customer. Account messages (no order) move alone."""
    order_id = send.refs.get("order_id")
    for other in sends:
        if other is send or (order_id and other.refs.get("order_id") == order_id):
            other.customer = customer


def assign_downstream(world: World, rng: random.Random, sends: list[Send]) -> None:
    """What each provider reports after accepting a send (only for sends accepted first time)."""

    def eligible(provider: str, before: datetime) -> list[Send]:
        return [
            s
            for s in sends
            if s.provider == provider
            and s.scenario == "ok"
            and world.calm(s.at)
            and world.start + timedelta(hours=2) < s.at < before
        ]

    assign(
        rng, eligible("sendgrid", world.now - timedelta(hours=6)), SENDGRID_SCENARIOS, "downstream"
    )
    assign(
        rng,
        eligible("postmark", world.silence - timedelta(hours=2)),
        POSTMARK_SCENARIOS,
        "downstream",
    )
    assign(rng, eligible("twilio", world.now - timedelta(hours=2)), TWILIO_SCENARIOS, "downstream")
    for send in sends:
        if send.downstream == "spam_block":
            move_order(sends, send, corporate(world, rng))
        elif send.downstream == "deferred_pending":
            send.at = world.now - timedelta(minutes=30 + 150 * rng.random())
        elif send.downstream in ("processed_only", "no_dlr"):
            send.at = calm_time(world, rng, 30, 120)
    # Later SendGrid sends to an address that hard-bounced are dropped by SendGrid.
    bounced: set[str] = set()
    for send in sorted(sends, key=lambda s: s.at):
        if send.provider != "sendgrid":
            continue
        if send.downstream == "hard_bounce":
            bounced.add(send.customer.email)
        elif send.customer.email in bounced and send.downstream == "ok" and send.scenario == "ok":
            send.downstream = "dropped_bounced"


def shop_record(
    send: Send,
    rng: random.Random,
    ts: datetime,
    attempt: int,
    status: str,
    *,
    message_id: str | None = None,
    error: dict | None = None,
    host: str = "",
    event: str = "notification.attempt",
) -> dict:
    record = {
        "ts": iso(ts),
        "level": "error" if error and not error.get("retryable") else "warn" if error else "info",
        "service": "notif-sender",
        "host": host or f"notif-worker-{rng.randint(1, 4)}",
        "event": event,
        "channel": send.channel,
        "provider": send.provider,
        **customer_fields(send.customer.id, send.form),
        **send.refs,
        "template": send.purpose,
        "attempt": attempt,
        "idempotency_key": send.key,
        "message_id": message_id,
        "recipient": {"email" if send.channel == "email" else "phone": send.recipient},
        "status": status,
        "error": error,
        "duration_ms": rng.randint(80, 900),
        "trace_id": hexs(rng, 16),
    }
    if message_id:
        record["provider_http_status"] = {"sendgrid": 202, "postmark": 200, "twilio": 201}[
            send.provider
        ]
    if error and error.get("retryable"):
        record["next_retry_at"] = iso(ts + secs(30 * 2 ** (attempt - 1)))
    record["notif_id"] = send.notif_id
    return record


def new_message_id(rng: random.Random, provider: str) -> str:
    if provider == "sendgrid":
        return b62(rng, 22)
    if provider == "postmark":
        return uuid4(rng)
    return "SM" + hexs(rng, 32)


API_PATHS = {"sendgrid": "/v3/mail/send", "postmark": "/email", "twilio": "/2010-04-01/Messages"}


def outage_error(rng: random.Random, provider: str, retryable: bool = True) -> dict:
    path = API_PATHS[provider]
    if rng.random() < 0.6:
        return {
            "type": "http_status",
            "code": 503,
            "http_status": 503,
            "message": f"POST {path} returned 503 Service Unavailable",
            "retryable": retryable,
        }
    return {
        "type": "timeout",
        "code": "ETIMEDOUT",
        "message": f"POST {path} timed out after 10000 ms (no response)",
        "retryable": retryable,
    }


def shop_attempts(send: Send, rng: random.Random) -> list[tuple[datetime, dict]]:
    """The log lines the sender wrote for one send; fills `send.accepted` with message ids."""
    t = send.at
    lines: list[tuple[datetime, dict]] = []

    def deliver(at: datetime, attempt: int, host: str = "") -> None:
        # The provider's API took the message: the sender logs "accepted" and its message id.
        # What happened next is only known from the provider's callbacks, which join this record.
        message_id = new_message_id(rng, send.provider)
        send.accepted.append((message_id, at))
        lines.append(
            (at, shop_record(send, rng, at, attempt, "accepted", message_id=message_id, host=host))
        )

    if send.scenario == "outage":
        failures = rng.choice((1, 1, 2, 2, 3, 4, 5))
        for attempt in range(1, failures + 1):
            gave_up = failures == 5 and attempt == 5
            error = outage_error(rng, send.provider, retryable=not gave_up)
            lines.append((t, shop_record(send, rng, t, attempt, "failed", error=error)))
            t += secs(30 * 2 ** (attempt - 1) + rng.random() * 5)
        if failures < 5:
            deliver(t, failures + 1)
    elif send.scenario == "auth_401":
        error = {
            "type": "provider_error",
            "code": 20003,
            "http_status": 401,
            "message": "Authenticate: HTTP 401 from api.twilio.com (error 20003, invalid credentials)",
            "retryable": False,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
    elif send.scenario == "retry_429":
        error = {
            "type": "http_status",
            "code": 429,
            "http_status": 429,
            "message": f"POST {API_PATHS[send.provider]} returned 429 Too Many Requests",
            "retryable": True,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
        deliver(t + secs(30 + rng.random() * 40), 2)
    elif send.scenario == "sync_21614":
        error = {
            "type": "provider_error",
            "code": 21614,
            "http_status": 400,
            "message": f"'To' number {send.recipient} is not a valid mobile number",
            "retryable": False,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
    elif send.scenario == "opted_out":
        # The sender's own opt-out list: nothing was sent to the provider.
        record = shop_record(send, rng, t, 1, "suppressed")
        record["suppression"] = "sms_stop" if send.channel == "sms" else "email_unsubscribed"
        lines.append((t, record))
    elif send.scenario == "queued_stuck":
        lines.append((t, shop_record(send, rng, t, 1, "queued")))
    elif send.scenario == "duplicate_send":
        deliver(t, 1, host="notif-worker-1")
        deliver(t + secs(20 + rng.random() * 40), 1, host="notif-worker-3")
    else:
        deliver(t, 1)
    return lines


MALFORMED_KINDS = ("truncated", "nan", "repr", "array", "traceback", "two_objects", "no_event")


def malformed_lines(send: Send, rng: random.Random, kind: str) -> list[str]:
    record = shop_record(send, rng, send.at, 1, "delivered", message_id=b62(rng, 22))
    text = json.dumps(record, separators=(",", ":"))
    if kind == "truncated":  # the worker was killed mid-write
        return [text[: int(len(text) * (0.3 + 0.5 * rng.random()))]]
    if kind == "nan":
        return [text.replace(f'"duration_ms":{record["duration_ms"]}', '"duration_ms":NaN')]
    if kind == "repr":
        short = {"ts": record["ts"], "event": record["event"], "status": "failed"}
        return [repr({**short, "customer_id": send.customer.id})]
    if kind == "array":
        return [json.dumps([record["event"], send.channel, send.customer.id, "delivered"])]
    if kind == "traceback":
        return [
            "Traceback (most recent call last):",
            f'  File "/app/notif/providers/{send.provider}.py", line 88, in send',
            "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.sendgrid.com', "
            f"port=443): Max retries exceeded (trace {hexs(rng, 16)})",
        ]
    if kind == "two_objects":
        a = {
            "ts": record["ts"],
            "event": record["event"],
            "status": "queued",
            "customer_id": send.customer.id,
        }
        b = {**a, "status": "failed"}
        return [json.dumps(a, separators=(",", ":")) + json.dumps(b, separators=(",", ":"))]
    # A plain log message: no event, no status.
    return [
        json.dumps(
            {
                "ts": record["ts"],
                "service": "notif-sender",
                "channel": send.channel,
                "customer_id": send.customer.id,
                "message": f"rendered template {send.purpose} ({rng.randint(90, 900)} chars)",
            },
            separators=(",", ":"),
        )
    ]


def shop_files(world: World, sends: list[Send]) -> list[LogFile]:
    rng = world.rng("shop-lines")
    entries: list[tuple[datetime, int, str]] = []  # (ts, tiebreak, text)
    for send in sends:
        for ts, record in shop_attempts(send, rng):
            if ts < world.now:
                entries.append((ts, len(entries), shop_line(world, record, ts)))
        if rng.random() < 0.012:  # debug lines about rendering: not delivery events
            record = shop_record(
                send, rng, send.at - secs(0.2), 0, None, event="notification.rendered"
            )
            record["level"] = "debug"
            entries.append((send.at - secs(0.2), len(entries), shop_line(world, record, send.at)))
    # Malformed lines: every kind at least once, tracebacks mostly during the outage.
    count = max(len(MALFORMED_KINDS), round(len(sends) * 0.002))
    kinds = list(MALFORMED_KINDS) + [
        rng.choice(("truncated", "traceback", "nan")) for _ in range(count - len(MALFORMED_KINDS))
    ]
    calm_sends = [s for s in sends if s.at < world.mapping_break]
    outage_sends = [s for s in sends if s.at in world.outage] or calm_sends
    for kind in kinds:
        send = rng.choice(outage_sends if kind == "traceback" else calm_sends)
        for offset, text in enumerate(malformed_lines(send, rng, kind)):
            entries.append((send.at + secs(0.5 + offset * 0.001), len(entries), text))
    # A few blank lines, as log shippers write them.
    for _ in range(3):
        entries.append((world.pick_time(rng, "retail"), len(entries), "   "))
    entries.sort()
    by_day: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for ts, _, text in entries:
        by_day[world.local(ts).date().isoformat()].append((ts, text))
    files = []
    for day in sorted(by_day):
        lines, arrivals = [], {}
        for ts, text in by_day[day]:
            arrived = shipped_at(ts)
            if arrived > world.now:
                continue  # not shipped yet
            number = len(lines) + 1
            lines.append((number, text.encode(), None))
            arrivals[number] = arrived
        files.append(LogFile("shop-sender", f"notif-sender-{day}.jsonl", lines, arrivals))
    return files


def shop_line(world: World, record: dict, ts: datetime) -> str:
    if ts >= world.mapping_break:
        # The logging library upgrade renamed `ts` to `timestamp`: the mapping no longer finds it.
        record = {("timestamp" if k == "ts" else k): v for k, v in record.items()}
    return json.dumps(record, separators=(",", ":"))
