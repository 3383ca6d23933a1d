"""support-desk: ticket updates, canonical JSON lines posted to its webhook by an iPaaS."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from notifwatch.demo.formats import hexs, secs
from notifwatch.demo.messages import EventIds, Message, canonical
from notifwatch.demo.scenarios import assign, missing_form
from notifwatch.demo.traffic import Call, batch_calls
from notifwatch.demo.world import World
from notifwatch.ingest.models import Transport

SUPPORT_SCENARIOS = (("bounce", 0.02, 1), ("no_outcome", 0.025, 1))
SUPPORT_SMS_SCENARIOS = (("unreachable", 0.02, 1),)
# What the help desk's providers reported: (status, error code, error message).
SUPPORT_FAILURES = {
    "bounce": (
        "bounced",
        "550",
        "550 5.1.1 <{email}>: Recipient address rejected: User unknown",
    ),
    "unreachable": ("undelivered", "30003", "Unreachable destination handset"),
}


def support_calls(world: World, count: int) -> list[Call]:
    rng = world.rng("support")
    messages = support_messages(world, rng, count)
    assign(
        rng,
        [m for m in messages if m.channel == "email" and m.at < world.now - timedelta(hours=30)],
        SUPPORT_SCENARIOS,
        "scenario",
    )
    assign(rng, [m for m in messages if m.channel == "sms"], SUPPORT_SMS_SCENARIOS, "scenario")
    new_id = EventIds("sd-")
    events = []
    for message in sorted(messages, key=lambda m: m.at):
        events += [(ts, e) for ts, e in support_events(message, rng, new_id) if ts < world.now]
    calls = batch_calls(
        world,
        rng,
        "support-desk",
        events,
        minutes=120,
        transport=Transport.WEBHOOK,
        lines=True,
        user_agent="Zapier",
    )
    resent = resent_calls(world, rng, calls)
    return calls + resent


def support_messages(world: World, rng: random.Random, count: int) -> list[Message]:
    """Tickets, each with the messages about it that went out before `now`."""
    messages: list[Message] = []
    ticket = 55000
    while len(messages) < count:
        ticket += 1
        customer = world.pick_customer(rng)
        world.tickets[f"TCK-{ticket}"] = customer
        form = missing_form(rng)
        opened = world.pick_time(rng, "office")
        for seq, (purpose, channel, hours) in enumerate(ticket_steps(rng), start=1):
            at = opened + timedelta(hours=hours)
            if at >= world.now:
                continue
            key = f"tck-{ticket}:{purpose}:{channel}:{seq}"
            provider = "twilio" if channel == "sms" else "mailgun"
            messages.append(
                Message(
                    at,
                    purpose,
                    channel,
                    customer,
                    key,
                    {"ticket_id": f"TCK-{ticket}"},
                    provider,
                    form,
                )
            )
    return messages


def ticket_steps(rng: random.Random) -> list[tuple[str, str, float]]:
    """(purpose, channel, hours after the ticket opened) of each message about one ticket."""
    steps = [("ticket_received", "email", 0.0)]
    for reply in range(rng.choice((1, 1, 2, 3))):
        steps.append(("ticket_reply", "email", 2 + reply * 20 * rng.random()))
    if rng.random() < 0.35:
        steps.append(("ticket_update_sms", "sms", 1 + 10 * rng.random()))
    if rng.random() < 0.4:
        steps.append(("satisfaction_survey", "email", 48 + 24 * rng.random()))
    return steps


def support_events(
    message: Message, rng: random.Random, new_id: EventIds
) -> list[tuple[datetime, dict]]:
    """Sent, then delivered (perhaps opened), failed or never heard of again."""
    t = message.at
    sent_id = (
        f"<{hexs(rng, 20)}@helpdesk.harborpine.example>"
        if message.channel == "email"
        else "SM" + hexs(rng, 32)
    )

    def event(ts: datetime, status: str, **extra) -> tuple[datetime, dict]:
        return ts, canonical(message, new_id(), ts, status, provider_message_id=sent_id, **extra)

    events = [event(t, "sent")]
    done = t + secs(3 + 40 * rng.random())
    if message.scenario in SUPPORT_FAILURES:
        status, code, text = SUPPORT_FAILURES[message.scenario]
        text = text.format(email=message.customer.email_at(message.at))
        events.append(event(done, status, error_code=code, error_message=text))
    elif message.scenario != "no_outcome":
        events.append(event(done, "delivered"))
        if message.channel == "email" and rng.random() < 0.3:
            events.append(event(done + timedelta(minutes=rng.expovariate(1 / 90)), "opened"))
    return events


def resent_calls(world: World, rng: random.Random, calls: list[Call]) -> list[Call]:
    """The calls the iPaaS made again; moves the ones a stale token refused to their resend."""
    resent = []
    for call in calls:
        if call.arrived in world.token_mixup:
            # Posted with a stale bearer token (rejected), then again after the fix an hour later.
            resent.append(replace(call, rejected="missing or wrong bearer token"))
            call.arrived = world.token_mixup.end + timedelta(minutes=20 + 10 * rng.random())
    # The iPaaS timed out waiting for one answer and posted the same batch again.
    if calls:
        again = rng.choice(calls)
        resent.append(replace(again, arrived=again.arrived + secs(30)))
    return resent
