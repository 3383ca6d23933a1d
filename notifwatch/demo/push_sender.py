"""push-sender: FCM / APNs send results as JSON lines (preset push_sender), imported daily."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifwatch.demo.formats import hexs, iso, secs, uuid4
from notifwatch.demo.scenarios import assign, customer_fields, missing_form
from notifwatch.demo.traffic import LogFile, shipped_at
from notifwatch.demo.world import REDRAWS, Customer, World

PUSH_PURPOSES = (
    ("out_for_delivery_push", "order", 40),
    ("order_shipped_push", "order", 25),
    ("ticket_update_push", "ticket", 10),
    ("back_in_stock_push", "product", 15),
    ("weekly_deals_push", "campaign", 10),
)
PUSH_SCENARIOS = (
    ("unavailable_retry", 0.006, 1),
    ("quota_retry", 0.01, 1),
    ("quota_pending", 0.003, 1),
    ("apns_unregistered", 0.006, 1),
)


@dataclass
class Push:
    at: datetime
    purpose: str
    customer: Customer
    refs: dict[str, str]
    form: str = "ok"
    scenario: str = "ok"
    notif_id: str = ""


def push_files(world: World, count: int) -> list[LogFile]:
    rng = world.rng("push")
    with_app = [c for c in world.customers if c.platform]
    # Pushes about an order or a ticket go to whoever placed or opened it, if they have the app.
    owned = {
        "order": [("order_id", ref, c) for ref, c in world.orders.items() if c.platform],
        "ticket": [("ticket_id", ref, c) for ref, c in world.tickets.items() if c.platform],
    }
    weights = [w for *_, w in PUSH_PURPOSES]
    pushes = []
    pushed: set[tuple[str, str]] = set()  # (purpose, order or ticket id)
    for index in range(count):
        purpose, ref, _ = rng.choices(PUSH_PURPOSES, weights)[0]
        refs: dict[str, str] = {}
        if index <= 1:
            customer = world.customers[7 + index]
            refs = own_ref(world, rng, ref, customer)
        elif owned.get(ref):
            # One push of a kind per order or ticket: a second would be a duplicate send.
            name, value, customer = rng.choice(owned[ref])
            for _ in range(REDRAWS):
                if (purpose, value) not in pushed:
                    break
                name, value, customer = rng.choice(owned[ref])
            pushed.add((purpose, value))
            refs = {name: value}
        else:
            customer = rng.choice(with_app)
        push = Push(
            world.pick_time(rng, "evening"), purpose, customer, refs, form=missing_form(rng)
        )
        push.notif_id = f"ntf_PU{index + 1:06d}"
        pushes.append(push)
    assign(rng, [p for p in pushes if not p.customer.stale_token], PUSH_SCENARIOS, "scenario")
    for push in pushes:
        if push.scenario == "quota_pending":
            push.at = world.now - timedelta(minutes=8 + 12 * rng.random())
        elif push.scenario == "apns_unregistered":
            push.customer = world.pick_customer(rng, platform="ios", stale_token=False)
            if push.refs:  # the order or ticket must be the new recipient's own
                kind = "order" if "order_id" in push.refs else "ticket"
                push.refs = own_ref(world, rng, kind, push.customer)
    entries = []
    for push in sorted(pushes, key=lambda p: p.at):
        for ts, record in push_results(push, rng):
            if shipped_at(ts) <= world.now:
                entries.append((ts, json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
    entries.sort()
    by_day: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for ts, text in entries:
        by_day[world.local(ts).date().isoformat()].append((ts, text))
    files = []
    for day in sorted(by_day):
        lines = [(n, text.encode(), None) for n, (_, text) in enumerate(by_day[day], start=1)]
        arrivals = {n: shipped_at(ts) for n, (ts, _) in enumerate(by_day[day], start=1)}
        files.append(LogFile("push-sender", f"push-results-{day}.jsonl", lines, arrivals))
    return files


def own_ref(world: World, rng: random.Random, kind: str, customer: Customer) -> dict[str, str]:
    """One of the customer's own orders or tickets, or no reference if they have none."""
    ledger = {"order": world.orders, "ticket": world.tickets}.get(kind, {})
    mine = [ref for ref, owner in ledger.items() if owner.id == customer.id]
    return {f"{kind}_id": rng.choice(mine)} if mine else {}


FCM_ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Message rate exceeded for this device."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
}
# The same retryable errors as APNs answers them: (HTTP status, reason).
APNS_RETRY_ERRORS = {
    "UNAVAILABLE": (503, "ServiceUnavailable"),
    "QUOTA_EXCEEDED": (429, "TooManyRequests"),
}
# Retried pushes: (FCM error code, seconds the provider asked the sender to wait).
PUSH_RETRIES = {
    "unavailable_retry": ("UNAVAILABLE", 10),
    "quota_retry": ("QUOTA_EXCEEDED", 60),
    "quota_pending": ("QUOTA_EXCEEDED", 1800),  # still waiting when the week ends
}
# (when, the result line's record)
PushResult = tuple[datetime, dict]


def push_results(push: Push, rng: random.Random) -> list[PushResult]:
    """The result lines the push sender logged for one push."""
    t = push.at
    fcm = push_provider(push) == "fcm"
    if push.customer.stale_token:
        if fcm:
            return [fcm_error(push, rng, t, 1, "UNREGISTERED", "failed")]
        return [push_result(push, rng, t, 1, "failed", 400, {"reason": "BadDeviceToken"})]
    if push.scenario == "apns_unregistered" and not fcm:
        response = {"reason": "Unregistered", "timestamp": int(t.timestamp() * 1000)}
        return [push_result(push, rng, t, 1, "failed", 410, response)]
    if push.scenario in PUSH_RETRIES:
        return push_retried(push, rng)
    return [push_accepted(push, rng, t, 1)]


def push_retried(push: Push, rng: random.Random) -> list[PushResult]:
    """A retryable error, then the retry the provider accepted (unless still waiting)."""
    code, wait = PUSH_RETRIES[push.scenario]
    t = push.at
    if push_provider(push) == "fcm":
        first = fcm_error(push, rng, t, 1, code, "retry_scheduled", retry_after_s=wait)
    else:
        http, reason = APNS_RETRY_ERRORS[code]
        response = {"reason": reason}
        first = push_result(push, rng, t, 1, "retry_scheduled", http, response, retry_after_s=wait)
    if push.scenario == "quota_pending":
        return [first]
    return [first, push_accepted(push, rng, t + secs(wait + 2 * rng.random()), 2)]


def push_provider(push: Push) -> str:
    return "fcm" if push.customer.platform == "android" else "apns"


def push_accepted(push: Push, rng: random.Random, ts: datetime, attempt: int) -> PushResult:
    if push_provider(push) == "fcm":
        name = (
            f"projects/harborpine-shop/messages/0:{int(ts.timestamp() * 1000)}000%{hexs(rng, 16)}"
        )
        return push_result(push, rng, ts, attempt, "accepted", 200, {"name": name})
    return push_result(push, rng, ts, attempt, "accepted", 200, {})


def fcm_error(
    push: Push, rng: random.Random, ts: datetime, attempt: int, code: str, outcome: str, **extra
) -> PushResult:
    http, status, message = FCM_ERRORS[code]
    detail = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    response = {"error": {"code": http, "message": message, "status": status, "details": detail}}
    return push_result(push, rng, ts, attempt, outcome, http, response, **extra)


def push_result(
    push: Push,
    rng: random.Random,
    ts: datetime,
    attempt: int,
    outcome: str,
    http: int,
    response: dict,
    **extra,
) -> PushResult:
    level = {"accepted": "info", "retry_scheduled": "warn"}.get(outcome, "error")
    record = {
        "ts": iso(ts),
        **push_fields(push),
        "level": level,
        "attempt": attempt,
        "http_status": http,
        "provider_response": response,
        "outcome": outcome,
        "duration_ms": rng.randint(60, 400),
        **extra,
    }
    if push_provider(push) == "apns":
        record.update(
            apns_id=uuid4(rng).upper(), apns_topic="com.harborpine.shop", apns_push_type="alert"
        )
    return ts, record


def push_fields(push: Push) -> dict:
    """What every result line about one push says."""
    customer = push.customer
    return {
        "level": "info",
        "service": "push-sender",
        "event": "push.send_result",
        "channel": "push",
        "provider": push_provider(push),
        "platform": customer.platform,
        **customer_fields(customer.id, push.form),
        **push.refs,
        "template": push.purpose,
        "notif_id": push.notif_id,
        "idempotency_key": f"{push.notif_id}:push",
        "device_id": customer.device_id,
        "token_sha256_16": hashlib.sha256(customer.device_id.encode()).hexdigest()[:16],
    }
