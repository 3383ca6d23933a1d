"""billing-api: canonical events posted to the events API in hourly batches."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from notifwatch.demo.formats import hexs, secs, uuid4
from notifwatch.demo.messages import EventIds, Message, canonical, recipient_of
from notifwatch.demo.scenarios import assign, missing_form
from notifwatch.demo.traffic import Call, batch_calls
from notifwatch.demo.world import (
    DAYS,
    DOWN_COMPANY,
    REDRAWS,
    World,
    local_window,
    subscription_id,
)
from notifwatch.ingest.models import Transport

BILLING_PURPOSES = (
    # (purpose, channel, weight); invoices go out in a nightly run at 02:00
    ("invoice_issued", "email", 30),
    ("payment_receipt", "email", 18),
    ("payment_failed", "email", 6),
    ("payment_failed", "in_app", 6),
    ("renewal_notice", "email", 8),
    ("renewal_notice", "in_app", 7),
    ("usage_alert", "in_app", 10),
    ("invoice_available", "webhook", 15),
)
BILLING_EMAIL_SCENARIOS = (
    ("bounce", 0.015, 1),
    ("too_large", 0.004, 1),
    ("mailbox_full", 0.003, 1),
    ("complaint", 0.002, 1),
    ("delayed", 0.004, 1),
)
BILLING_IN_APP_SCENARIOS = (("unseen", 0.06, 1),)
BILLING_WEBHOOK_SCENARIOS = (("retry_ok", 0.03, 1), ("retrying_now", 0.03, 1))
# Email failures as SES reports them: (hours after the attempt settles, status, code, message).
BILLING_EMAIL_FAILURES = {
    "bounce": (0, "bounced", "Permanent/General", "smtp; 550 5.1.1 <{email}>... User unknown"),
    "too_large": (
        0,
        "bounced",
        "5.3.4",
        "552 5.3.4 Message size exceeds fixed maximum message size (invoice PDF attached, 14 MB)",
    ),
    # SES is still retrying.
    "delayed": (
        0,
        "deferred",
        "MailboxFull",
        "452 4.2.2 The recipient's mailbox is full, delivery will be retried",
    ),
    "mailbox_full": (4, "bounced", "Transient/MailboxFull", "smtp; 552 5.2.2 Mailbox full"),
}
WEBHOOK_TIMEOUTS = (
    ("ETIMEDOUT", "POST timed out after 10000 ms"),
    ("503", "HTTP 503 Service Unavailable"),
)
# (when, status, the event's other canonical fields)
Step = tuple[datetime, str, dict]


def billing_calls(world: World, count: int) -> list[Call]:
    rng = world.rng("billing")
    messages = billing_messages(world, rng, count)
    assign_billing_scenarios(world, rng, messages)
    new_id = EventIds("bil_evt_")
    events = []
    for message in sorted(messages, key=lambda m: m.at):
        events += [(ts, e) for ts, e in billing_events(message, rng, new_id) if ts < world.now]
    calls = batch_calls(
        world, rng, "billing-api", events, minutes=60, transport=Transport.API, lines=False
    )
    # A new billing feature posted a status nobody mapped yet: the whole batch is quarantined.
    calls.append(billing_bad_batch(world, rng, new_id))
    return calls


def billing_messages(world: World, rng: random.Random, count: int) -> list[Message]:
    weights = [w for *_, w in BILLING_PURPOSES]
    business = [c for c in world.customers if c.company]
    messages: list[Message] = []
    invoice = 40000
    noticed: set[tuple[str, str]] = set()  # (purpose, subscription id)
    for _ in range(count):
        purpose, channel, _ = rng.choices(BILLING_PURPOSES, weights)[0]
        customer = rng.choice(business) if channel == "webhook" else world.pick_customer(rng)
        if len(messages) < 4:  # the household sharing one address gets its invoices too
            customer, channel, purpose = (
                world.customers[len(messages) % 2],
                "email",
                "invoice_issued",
            )
        if purpose == "invoice_issued" and rng.random() < 0.7:
            at = nightly_run(world, rng)
        else:
            at = world.pick_time(rng, "office")
        invoice += 1
        if purpose in ("renewal_notice", "usage_alert"):
            # One notice of a kind per subscription in the week: a second one would be a
            # duplicate send the demo did not mean to show.
            for _ in range(REDRAWS):
                if (purpose, subscription_id(customer)) not in noticed:
                    break
                customer = world.pick_customer(rng)
            noticed.add((purpose, subscription_id(customer)))
            ref = {"subscription_id": subscription_id(customer)}
            key = f"{ref['subscription_id'].lower()}:{purpose}:{channel}:{invoice}"
        else:
            ref = {"invoice_id": f"INV-{world.now.year}-{invoice:06d}"}
            key = f"{ref['invoice_id'].lower()}:{purpose}:{channel}"
        provider = {"email": "ses", "webhook": "http"}.get(channel, "")
        messages.append(
            Message(at, purpose, channel, customer, key, ref, provider, missing_form(rng))
        )
    return messages


def assign_billing_scenarios(world: World, rng: random.Random, messages: list[Message]) -> None:
    """Scenarios per channel; the down company's endpoint refuses every call in its window."""
    emails = [m for m in messages if m.channel == "email"]
    assign(rng, emails, BILLING_EMAIL_SCENARIOS, "scenario")
    assign(
        rng, [m for m in messages if m.channel == "in_app"], BILLING_IN_APP_SCENARIOS, "scenario"
    )
    hooks = [m for m in messages if m.channel == "webhook"]
    assign(rng, hooks, BILLING_WEBHOOK_SCENARIOS, "scenario")
    down = [m for m in hooks if m.customer.company == DOWN_COMPANY and m.scenario == "ok"]
    if not any(m.at in world.webhook_down for m in down):
        for message in down[:2]:
            message.at = world.webhook_down.pick(rng)
    for message in messages:
        if (
            message.channel == "webhook"
            and message.customer.company == DOWN_COMPANY
            and message.at in world.webhook_down
        ):
            message.scenario = "endpoint_down"
        if message.scenario == "retrying_now":
            message.at = world.now - timedelta(minutes=40 + 60 * rng.random())
        if message.scenario == "unseen":
            message.at = world.now - timedelta(hours=20 + 100 * rng.random())
        if message.scenario == "delayed":
            message.at = world.now - timedelta(minutes=30 + 120 * rng.random())


def nightly_run(world: World, rng: random.Random) -> datetime:
    """The invoice run starts at 02:00 on weekdays."""
    runs = [local_window(world.now, world.tz, d, 2, 2.75) for d in range(DAYS + 1)]
    runs = [w for w in runs if w.start >= world.start and w.end <= world.now]
    runs = [w for w in runs if world.local(w.start).weekday() < 5] or runs
    return rng.choice(runs).pick(rng)


def billing_events(
    message: Message, rng: random.Random, new_id: EventIds
) -> list[tuple[datetime, dict]]:
    """The canonical events billing posted about one message."""
    if message.channel == "email":
        steps = billing_email_steps(message, rng)
    elif message.channel == "in_app":
        steps = billing_in_app_steps(message, rng)
    else:
        steps = billing_webhook_steps(message, rng)
    return [(ts, canonical(message, new_id(), ts, status, **extra)) for ts, status, extra in steps]


def billing_email_steps(message: Message, rng: random.Random) -> list[Step]:
    """Sent through SES: delivered (perhaps opened, perhaps a complaint) or a failure."""
    t = message.at
    ses_id = f"0100{hexs(rng, 12)}-{uuid4(rng)}-000000"
    sent = t + secs(1 + rng.random())
    done = t + secs(3 + 30 * rng.random())
    ses = {"provider_message_id": ses_id}
    steps: list[Step] = [(t, "queued", {}), (sent, "sent", {**ses, "attempt": 1})]
    if message.scenario in BILLING_EMAIL_FAILURES:
        hours, status, code, text = BILLING_EMAIL_FAILURES[message.scenario]
        error = {
            "error_code": code,
            "error_message": text.format(email=message.customer.email_at(t)),
        }
        steps.append((done + timedelta(hours=hours), status, {**ses, **error}))
        return steps
    steps.append((done, "delivered", ses))
    if rng.random() < 0.4:
        steps.append((done + timedelta(minutes=rng.expovariate(1 / 240)), "opened", ses))
    if message.scenario == "complaint":
        complaint = {"error_code": "abuse", "error_message": "Complaint feedback type: abuse"}
        steps.append(
            (done + timedelta(hours=8 + 20 * rng.random()), "complained", {**ses, **complaint})
        )
    return steps


def billing_in_app_steps(message: Message, rng: random.Random) -> list[Step]:
    t = message.at
    steps: list[Step] = [(t, "sent", {})]
    if message.scenario != "unseen":  # the customer has not opened the app since
        steps.append((t + secs(0.5 + rng.random()), "delivered", {}))
        if rng.random() < 0.45:
            steps.append((t + timedelta(minutes=rng.expovariate(1 / 300)), "opened", {}))
    return steps


def billing_webhook_steps(message: Message, rng: random.Random) -> list[Step]:
    """Calls to a business customer's endpoint: retried after a timeout, or refused."""
    t = message.at
    steps: list[Step] = [(t, "sent", {"attempt": 1})]
    if message.scenario == "retry_ok":
        code, text = rng.choice(WEBHOOK_TIMEOUTS)
        steps.append(
            (t + secs(10), "deferred", {"attempt": 1, "error_code": code, "error_message": text})
        )
        steps.append((t + secs(70 + rng.random() * 30), "delivered", {"attempt": 2}))
    elif message.scenario in ("endpoint_down", "retrying_now"):
        refused = {
            "error_code": "ECONNREFUSED",
            "error_message": f"connect ECONNREFUSED {recipient_of(message)}",
        }
        when = t + secs(1)
        for attempt, wait in enumerate((60, 600, 3600, 14400), start=1):
            steps.append((when, "deferred", {"attempt": attempt, **refused}))
            when += secs(wait)
        if message.scenario == "endpoint_down":  # retrying_now is still between attempts
            gave_up = {
                "attempt": 5,
                "error_code": "ECONNREFUSED",
                "error_message": "gave up after 5 attempts: connect ECONNREFUSED",
            }
            steps.append((when, "failed", gave_up))
    else:
        steps.append((t + secs(0.2 + rng.random()), "delivered", {"attempt": 1}))
    return steps


def billing_bad_batch(world: World, rng: random.Random, new_id: EventIds) -> Call:
    at = world.pick_time(rng, "office")
    customer = world.pick_customer(rng)
    invoice = f"INV-{world.now.year}-{rng.randint(90000, 99999):06d}"
    message = Message(
        at,
        "payment_receipt",
        "email",
        customer,
        f"{invoice.lower()}:payment_receipt:email",
        {"invoice_id": invoice},
        "ses",
    )
    events = [
        canonical(message, new_id(), at, "queued"),
        canonical(
            message,
            new_id(),
            at + secs(1),
            "sent",
            provider_message_id=f"0100{hexs(rng, 12)}-{uuid4(rng)}-000000",
        ),
        canonical(message, new_id(), at + secs(3), "paid"),
    ]
    arrived = at + timedelta(minutes=30)
    return Call(
        "billing-api",
        min(arrived, world.now - secs(1)),
        json.dumps(events).encode(),
        transport=Transport.API,
        headers={"Content-Type": "application/json", "User-Agent": "billing-api/4.2"},
    )
