"""sendgrid: SendGrid's event webhook batches about the shop sender's email.

The provider's own webhook body, as its adapter (notifwatch.ingest.providers) reads it. The
callbacks carry the provider message id the shop sender logged when the provider accepted the
message; processing joins them to that send record, which gives the customer, purpose and refs.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta

from notifwatch.demo.formats import b62, hexs, secs
from notifwatch.demo.shop_sender import Send
from notifwatch.demo.traffic import Call, Callback
from notifwatch.demo.world import FIRST_NAMES, LAST_NAMES, World

SENDGRID_HEADERS = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
SENDGRID_BATCH = timedelta(minutes=30)
# (when, SendGrid event type, the event's own fields)
SendgridEvent = tuple[datetime, str, dict]
# (seconds after processing, type, enhanced status, bounce classification, SMTP reason)
SENDGRID_BOUNCES = {
    "hard_bounce": (
        2,
        "bounce",
        "5.1.1",
        "Invalid Address",
        "550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
    ),
    "spam_block": (
        3,
        "blocked",
        "5.7.1",
        "Reputation",
        "550 5.7.1 [198.51.100.24] Message rejected by {mx} under local policy: looks like unsolicited mail",
    ),
    "unclassified": (3, "bounce", "5.0.0", "Unclassified", "550 5.0.0 Message rejected"),
    "mailbox_full": (
        5 * 3600,
        "bounce",
        "5.2.2",
        "Mailbox Unavailable",
        "552 5.2.2 Mailbox full: the recipient's storage quota is exceeded",
    ),
}
SENDGRID_DEFERRALS = (
    "421 4.7.0 [198.51.100.24] Too many concurrent connections from this IP, try again later",
    "451 4.3.0 Temporary server error at {mx}, please retry",
    "421 4.4.5 {mx} is busy, try again later",
)
# SendGrid drops a message to an address on one of its suppression lists without processing it.
SENDGRID_DROPS = {"unsubscribed": "Unsubscribed Address", "dropped_bounced": "Bounced Address"}


def sendgrid_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("sendgrid")
    callbacks: list[Callback] = []
    for send in sends:
        if send.provider != "sendgrid":
            continue
        for message_id, at in send.accepted:
            callbacks += sendgrid_events(send, message_id, at, rng)
    callbacks += legacy_script_callbacks(world, rng, max(1, round(len(sends) * 0.0005)))
    callbacks = [c for c in callbacks if c.arrival < world.now]
    callbacks.sort(key=lambda c: c.arrival)
    return sendgrid_posts(world, rng, callbacks)


def legacy_script_callbacks(world: World, rng: random.Random, count: int) -> list[Callback]:
    """One-off sends from a legacy bulk script, without any of our ids (identity unknown)."""
    callbacks = []
    for _ in range(count):
        at = world.pick_time(rng, "retail")
        record = {
            "email": f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}@@example.com",
            "timestamp": int(at.timestamp()),
            "smtp-id": f"<{b62(rng, 22)}@geopod-ismtpd-2>",
            "event": "dropped",
            "category": "legacy-bulk-script",
            "sg_event_id": b62(rng, 22),
            "sg_message_id": f"{b62(rng, 22)}.recvd-7c4f9d6b8-2xkqm-1-{hexs(rng, 8).upper()}-3.0",
            "reason": "Invalid",
        }
        callbacks.append(Callback(at + secs(5), record))
    return callbacks


def sendgrid_posts(world: World, rng: random.Random, callbacks: list[Callback]) -> list[Call]:
    """SendGrid batches events, several per POST: one POST per SENDGRID_BATCH of arrivals here."""
    batches: dict[int, list[Callback]] = defaultdict(list)
    for callback in callbacks:
        batches[int(callback.arrival.timestamp() // SENDGRID_BATCH.total_seconds())].append(
            callback
        )
    calls: list[Call] = []
    keys = sorted(batches)
    repeat_event = set(rng.sample(range(len(keys)), min(len(keys), max(1, len(keys) // 70))))
    repost = set(rng.sample(range(len(keys)), min(len(keys), max(1, len(keys) // 100))))
    carried: list[Callback] = []
    for index, key in enumerate(keys):
        batch = carried + batches[key]
        carried = []
        if index in repeat_event:
            # The next POST repeats this batch's last event (same sg_event_id).
            carried = [batch[-1]]
        arrived = max(c.arrival for c in batches[key])
        body = json.dumps([c.record for c in batch]).encode()
        calls.append(Call("sendgrid", arrived, body, headers=SENDGRID_HEADERS))
        if index in repost:
            # Our endpoint answered too slowly; SendGrid posted the same batch again.
            again = arrived + secs(180 + rng.random() * 120)
            if again < world.now:
                calls.append(Call("sendgrid", again, body, headers=SENDGRID_HEADERS))
    return calls


def sendgrid_events(
    send: Send, message_id: str, at: datetime, rng: random.Random
) -> list[Callback]:
    """The callbacks about one message SendGrid accepted at `at`."""
    sg_message_id = f"{message_id}.recvd-7c4f9d6b8-2xkqm-1-{hexs(rng, 8).upper()}-3.0"
    t = at + secs(1 + rng.random())
    events: list[SendgridEvent] = []
    if send.downstream not in SENDGRID_DROPS:
        events.append((t, "processed", {}))
    mx = f"mx{rng.randint(1, 3)}.{send.recipient.split('@')[-1]}"
    events += sendgrid_outcome(send, t, mx, rng)
    return [sendgrid_callback(send, message_id, sg_message_id, event, rng) for event in events]


def sendgrid_outcome(send: Send, t: datetime, mx: str, rng: random.Random) -> list[SendgridEvent]:
    """What SendGrid reported after processing (at `t`), by the send's downstream scenario."""
    scenario = send.downstream
    if scenario == "mailbox_full":
        response = f"452 4.2.2 <{send.recipient}>: mailbox over quota, try again later"
        return [
            (t + secs(4), "deferred", {"attempt": "1", "response": response}),
            (t + timedelta(minutes=45), "deferred", {"attempt": "2", "response": response}),
            sendgrid_bounce(send, t, mx),
        ]
    if scenario in SENDGRID_BOUNCES:
        return [sendgrid_bounce(send, t, mx)]
    if scenario in ("deferred_then_delivered", "deferred_pending"):
        return sendgrid_deferrals(scenario, t, mx, rng)
    if scenario in SENDGRID_DROPS:
        return [(t, "dropped", {"reason": SENDGRID_DROPS[scenario]})]
    if scenario == "processed_only":
        return []  # SendGrid never reported an outcome: late
    events = sendgrid_delivered(t + secs(2 + rng.random() * 30), rng)
    if scenario == "complaint":
        events.append((t + timedelta(hours=6 + 24 * rng.random()), "spamreport", {}))
    return events


def sendgrid_bounce(send: Send, t: datetime, mx: str) -> SendgridEvent:
    after, kind, status, classification, reason = SENDGRID_BOUNCES[send.downstream]
    return (
        t + secs(after),
        "bounce",
        {
            "type": kind,
            "status": status,
            "bounce_classification": classification,
            "reason": reason.format(recipient=send.recipient, mx=mx),
        },
    )


def sendgrid_deferrals(
    scenario: str, t: datetime, mx: str, rng: random.Random
) -> list[SendgridEvent]:
    """Temporary failures, then (for deferred_then_delivered) the delivery."""
    responses = tuple(response.format(mx=mx) for response in SENDGRID_DEFERRALS)
    tries = rng.choice((1, 1, 2)) if scenario == "deferred_then_delivered" else 2
    events: list[SendgridEvent] = []
    when = t + secs(3)
    for attempt in range(1, tries + 1):
        events.append(
            (when, "deferred", {"attempt": str(attempt), "response": rng.choice(responses)})
        )
        when += timedelta(minutes=15 * attempt + rng.random() * 10)
    if scenario == "deferred_then_delivered":
        events += sendgrid_delivered(when, rng)
    return events


def sendgrid_delivered(when: datetime, rng: random.Random) -> list[SendgridEvent]:
    """A delivery, and sometimes the recipient opening (and clicking) the message."""
    events: list[SendgridEvent] = [
        (
            when,
            "delivered",
            {
                "ip": "198.51.100.24",
                "tls": 1,
                "response": f"250 2.0.0 OK: queued as {b62(rng, 12)}",
            },
        )
    ]
    if rng.random() < 0.35:
        opened = when + timedelta(minutes=rng.expovariate(1 / 180))
        events.append(
            (opened, "open", {"ip": f"203.0.113.{rng.randint(2, 250)}", "useragent": "Mozilla/5.0"})
        )
        if rng.random() < 0.2:
            events.append(
                (
                    opened + secs(20 + rng.random() * 300),
                    "click",
                    {"url": "https://shop.harborpine.example/orders"},
                )
            )
    return events


def sendgrid_callback(
    send: Send, message_id: str, sg_message_id: str, event: SendgridEvent, rng: random.Random
) -> Callback:
    when, kind, extra = event
    record = {
        "email": send.recipient,
        "timestamp": int(when.timestamp()),
        "smtp-id": f"<{message_id}@geopod-ismtpd-4>",
        "event": kind,
        "category": ["transactional", send.purpose],
        "sg_event_id": b62(rng, 22),
        "sg_message_id": sg_message_id,
        **extra,
        # The message's custom_args, which SendGrid merges into every event.
        **({"customer_id": send.customer_id} if send.customer_id else {}),
        **send.refs,
        "template": send.purpose,
        "notif_id": send.notif_id,
    }
    arrival = when + secs(2 + rng.random() * 60)
    if send.downstream == "out_of_order" and kind == "processed":
        arrival += timedelta(minutes=12)  # arrives after the delivery it preceded
    return Callback(arrival, record)
