"""twilio: Twilio's signed status callbacks about the shop sender's SMS.

The provider's own webhook body, as its adapter (notifwatch.ingest.providers) reads it. The
callbacks carry the provider message id the shop sender logged when the provider accepted the
message; processing joins them to that send record, which gives the customer, purpose and refs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings

from notifwatch.demo.formats import secs
from notifwatch.demo.shop_sender import Send
from notifwatch.demo.traffic import Call
from notifwatch.demo.world import World

TWILIO_TOKEN = "demo-twilio-auth-token"
TWILIO_ROTATED_TOKEN = "demo-twilio-auth-token-rotated"  # what Twilio signed with, for a while
TWILIO_ACCOUNT = "AC6eede0a1c20800a68674b1dc0f10d74d"
TWILIO_SERVICE = "MG18f24c7042e35435984238ef4a317a04"
TWILIO_FROM = "+12025550100"
TWILIO_ERRORS = {
    "unreachable": ("undelivered", "30003"),
    "landline": ("undelivered", "30006"),
    "filtered": ("undelivered", "30007"),
    "unknown": ("undelivered", "30008"),
    "stop": ("failed", "21610"),
}


def twilio_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("twilio")
    url = f"{settings.NOTIFWATCH_BASE_URL}/hooks/twilio/"
    calls = []
    for send in sends:
        if send.provider != "twilio":
            continue
        for sid, at in send.accepted:
            for arrival, params in twilio_callbacks(send, sid, at, rng):
                if arrival >= world.now:
                    continue
                # One form-encoded callback per status change, signed like Twilio signs it.
                body = urlencode(params).encode()
                rejected = arrival in world.rejected
                token = TWILIO_ROTATED_TOKEN if rejected else TWILIO_TOKEN
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": "TwilioProxy/1.1",
                    "X-Twilio-Signature": twilio_signature(token, url, params),
                }
                call = Call(
                    "twilio", arrival, body, content_type=headers["Content-Type"], headers=headers
                )
                if rejected:
                    call.rejected = "signature mismatch"
                calls.append(call)
    return calls


def twilio_callbacks(
    send: Send, sid: str, at: datetime, rng: random.Random
) -> list[tuple[datetime, list[tuple[str, str]]]]:
    def params(status: str, error: str = "", done: datetime | None = None) -> list[tuple[str, str]]:
        fields = [
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", send.recipient),
            ("MessagingServiceSid", TWILIO_SERVICE),
            ("MessageSid", sid),
            ("AccountSid", TWILIO_ACCOUNT),
            ("From", TWILIO_FROM),
            ("ApiVersion", "2010-04-01"),
        ]
        if error:
            fields.append(("ErrorCode", error))
        if done:
            fields.insert(0, ("RawDlrDoneDate", done.astimezone(UTC).strftime("%y%m%d%H%M")))
        return fields

    scenario = send.downstream
    out: list[tuple[datetime, list[tuple[str, str]]]] = []
    t = at + secs(0.3 + rng.random())
    if rng.random() < 0.3:
        out.append((t, params("queued")))
    if scenario == "stop":
        out.append((t + secs(1), params(*TWILIO_ERRORS["stop"])))
        return out
    sent = t + secs(1 + 2 * rng.random())
    out.append((sent, params("sent")))
    done = sent + secs(4 + 50 * rng.random())
    if scenario in TWILIO_ERRORS:
        out.append((done, params(*TWILIO_ERRORS[scenario])))
    elif scenario != "no_dlr":
        out.append((done, params("delivered", done=done)))
        if scenario == "dup_callback":
            out.append((done + secs(2 + 10 * rng.random()), params("delivered", done=done)))
        elif scenario == "out_of_order":
            # The 'sent' callback is delayed and arrives after 'delivered'.
            out[-2] = (done + secs(15 + 40 * rng.random()), out[-2][1])
    return out


def twilio_signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
