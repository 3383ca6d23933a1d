"""postmark: Postmark's webhook records about the shop sender's account email.

The provider's own webhook body, as its adapter (notifwatch.ingest.providers) reads it. The
callbacks carry the provider message id the shop sender logged when the provider accepted the
message; processing joins them to that send record, which gives the customer, purpose and refs.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from notifwatch.demo.formats import compact, iso_s, secs
from notifwatch.demo.shop_sender import Send
from notifwatch.demo.traffic import Call, Callback
from notifwatch.demo.world import World

POSTMARK_HEADERS = {"Content-Type": "application/json", "User-Agent": "Postmark"}
POSTMARK_SUBJECTS = {
    "password_reset": "Reset your password",
    "email_verification": "Confirm your email address",
}
# Bounce-shaped records: (Type, TypeCode, Name, Description, Details). A spam complaint has the
# shape of a bounce, with its own record type.
POSTMARK_BOUNCES = {
    "hard_bounce": (
        "HardBounce",
        1,
        "Hard bounce",
        "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "smtp;550 5.1.1 <{email}>: Recipient address rejected: User unknown in local recipient table",
    ),
    "soft_bounce": (
        "SoftBounce",
        4096,
        "Soft bounce",
        "Unable to temporarily deliver message (i.e. mailbox full, account disabled, exceeds quota, out of disk space).",
        "smtp;552 5.2.2 Mailbox full: {email} has exceeded its storage quota",
    ),
    "transient": (
        "Transient",
        2,
        "Message delayed",
        "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
        "smtp;421 4.4.2 Connection timed out, will retry",
    ),
    "complaint": (
        "SpamComplaint",
        100001,
        "Spam complaint",
        "The subscriber explicitly marked this message as spam.",
        "Complaint received via ISP feedback loop",
    ),
}
# (when, the record as Postmark posts it)
PostmarkRecord = tuple[datetime, dict]


def postmark_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("postmark")
    calls = []
    for send in sends:
        if send.provider != "postmark":
            continue
        for message_id, at in send.accepted:
            for callback in postmark_events(send, message_id, at, rng):
                if callback.arrival >= min(world.silence, world.now):
                    continue  # Postmark stopped reporting (the webhook was switched off)
                # One record per POST; a SubscriptionChange is recognised and ignored.
                body = json.dumps(callback.record).encode()
                calls.append(Call("postmark", callback.arrival, body, headers=POSTMARK_HEADERS))
                if send.downstream == "repeat" and callback.record["RecordType"] == "Delivery":
                    # Postmark did not get our 200 in time and posted the record again.
                    again = callback.arrival + secs(40)
                    calls.append(Call("postmark", again, body, headers=POSTMARK_HEADERS))
    return calls


def postmark_events(
    send: Send, message_id: str, at: datetime, rng: random.Random
) -> list[Callback]:
    """The records about one message Postmark accepted at `at`, by its downstream scenario."""
    scenario = send.downstream
    records: list[PostmarkRecord] = []
    t = at + secs(2 + rng.random() * 20)
    if scenario in ("hard_bounce", "soft_bounce"):
        records.append(postmark_bounce(send, message_id, t, scenario, rng))
    elif scenario == "transient":
        records.append(postmark_bounce(send, message_id, t, "transient", rng))
        later = t + timedelta(minutes=20 + 30 * rng.random())
        records.append(postmark_delivery(send, message_id, later))
    else:
        records.append(postmark_delivery(send, message_id, t))
        if scenario == "complaint":
            when = t + timedelta(hours=3 + 20 * rng.random())
            records.append(postmark_bounce(send, message_id, when, "complaint", rng))
        elif scenario == "subscription_change":
            when = t + timedelta(hours=1 + 5 * rng.random())
            records.append(postmark_subscription_change(send, message_id, when))
    return [Callback(when + secs(1 + rng.random() * 8), record) for when, record in records]


def postmark_base(message_id: str) -> dict:
    return {"ServerID": 4412078, "MessageStream": "outbound", "MessageID": message_id}


def postmark_metadata(send: Send) -> dict:
    """The message's Metadata, which Postmark echoes in every record about it."""
    return compact({"customer_id": send.customer_id, **send.refs, "notif_id": send.notif_id})


def postmark_delivery(send: Send, message_id: str, when: datetime) -> PostmarkRecord:
    return (
        when,
        {
            "RecordType": "Delivery",
            **postmark_base(message_id),
            "Recipient": send.recipient,
            "Tag": send.purpose,
            "DeliveredAt": iso_s(when),
            "Details": f"smtp;250 2.0.0 OK {int(when.timestamp())} accepted for delivery",
            "Metadata": postmark_metadata(send),
        },
    )


def postmark_bounce(
    send: Send, message_id: str, when: datetime, kind: str, rng: random.Random
) -> PostmarkRecord:
    name, code, label, description, details = POSTMARK_BOUNCES[kind]
    complaint = kind == "complaint"
    return (
        when,
        {
            "RecordType": "SpamComplaint" if complaint else "Bounce",
            "ID": rng.randint(3_800_000_000, 3_899_999_999),
            "Type": name,
            "TypeCode": code,
            "Name": label,
            "Tag": send.purpose,
            **postmark_base(message_id),
            "Description": description,
            "Details": details.format(email=send.recipient),
            "Email": send.recipient,
            "From": "account@mail.harborpine.example",
            "BouncedAt": iso_s(when),
            "DumpAvailable": True,
            # The address is deactivated after a hard bounce or a complaint; only a bounce's
            # deactivation may be undone.
            "Inactive": complaint or kind == "hard_bounce",
            "CanActivate": not complaint,
            "Subject": POSTMARK_SUBJECTS.get(send.purpose, "Your Harborpine account"),
            "Metadata": postmark_metadata(send),
        },
    )


def postmark_subscription_change(send: Send, message_id: str, when: datetime) -> PostmarkRecord:
    return (
        when,
        {
            "RecordType": "SubscriptionChange",
            **postmark_base(message_id),
            "ChangedAt": iso_s(when),
            "Recipient": send.recipient,
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Tag": send.purpose,
            "Metadata": postmark_metadata(send),
        },
    )
