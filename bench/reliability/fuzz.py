"""fuzz: a seeded, bounded fuzz of every ingest endpoint with valid credentials.

Request i of seed s is generated from random.Random(f"{s}:{i}") alone, so any one of them can be
sent again by itself: `python -m bench.reliability fuzz --seed s --only i`. Each request picks an
input family (shapes, types, sizes, encodings, nesting, lone surrogates, NUL, timestamps, numbers,
duplicate ids, multipart boundaries, plus valid bodies as a baseline) and an endpoint (the events
API, a JSON source signed with Standard Webhooks, SendGrid, Postmark, Mailgun, Twilio, and the
other email providers with basic auth), signed as the sender would sign it.

Criteria: no 5xx and no request left unanswered; no raw row left `received`; every 4xx whose
body was kept is `quarantined` with a reason (401/403: `rejected`); a 2xx was recorded (its raw
row parsed, duplicate or ignored). A table gives answers and outcomes per family, and each
failure kind a few reproducers.
"""

import argparse
import gzip
import json
import multiprocessing
import random
import time
from collections import Counter, defaultdict
from urllib.parse import quote

from bench.reliability import payloads
from bench.reliability.client import MARK_HEADER, Request, Sender
from bench.reliability.server import Credentials, log_excerpt, running_app, wait_for_received

FORM = "application/x-www-form-urlencoded"
OTHER_PROVIDERS = ("brevo", "mailjet", "resend", "sparkpost")
ENDPOINTS = ("api", "sw", "sendgrid", "postmark", "mailgun", "twilio", "other")
FAMILIES = (
    "valid",
    "shape",
    "type",
    "size",
    "encoding",
    "nesting",
    "surrogate",
    "nul",
    "timestamp",
    "number",
    "dup_id",
    "multipart",
)
MAX_BODY = 5 * 1024 * 1024  # NOTIFWATCH_MAX_BODY_BYTES' default


class Raw:
    """A JSON token written exactly as given: 1e400, NaN, 100k-deep arrays, bad UTF-8."""

    def __init__(self, data: bytes, label: str = ""):
        self.data = data
        self.label = label or data[:40].decode("latin-1")


def dump(document) -> bytes:
    """JSON with Raw tokens spliced in; lone surrogates and NUL come out as \\u escapes."""
    tokens: list[bytes] = []

    def swap(value):
        if isinstance(value, Raw):
            tokens.append(value.data)
            return f"@@raw{len(tokens) - 1}@@"
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(document)).encode()
    for index, token in enumerate(tokens):
        text = text.replace(f'"@@raw{index}@@"'.encode(), token, 1)
    return text


def set_path(document, path: tuple, value) -> None:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def describe(value) -> str:
    if isinstance(value, Raw):
        return value.label
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} chars)"


# --- the valid documents each endpoint starts from ---


class Base:
    """A valid body for one endpoint, and where its strings, times and numbers live."""

    def __init__(self, document, strings, times, numbers, prefix: tuple = ()):
        self.document = document
        self.prefix = prefix
        self.strings = [prefix + path for path in strings]
        self.times = [prefix + path for path in times]
        self.numbers = [prefix + path for path in numbers]

    @property
    def anything(self) -> list[tuple]:
        return self.strings + self.times + self.numbers


CANONICAL_STRINGS = [
    ("event_id",),
    ("notification_key",),
    ("recipient",),
    ("customer_id",),
    ("purpose",),
    ("status",),
    ("channel",),
    ("error_message",),
    ("error_code",),
    ("refs", "order_id"),
]


def base_for(endpoint: str, rng: random.Random, index: int, other: str) -> Base:
    tag = f"fz{index}"
    if endpoint in ("api", "sw"):
        events = [payloads.canonical_event(tag, n, rng) for n in range(rng.randint(1, 4))]
        if len(events) == 1 and rng.random() < 0.5:
            return Base(events[0], CANONICAL_STRINGS, [("occurred_at",)], [("attempt",)])
        return Base(events, CANONICAL_STRINGS, [("occurred_at",)], [("attempt",)], prefix=(0,))
    if endpoint == "sendgrid":
        events = [payloads.sendgrid_event(tag, n) for n in range(rng.randint(1, 3))]
        strings = [("email",), ("sg_event_id",), ("sg_message_id",), ("response",), ("event",)]
        return Base(events, strings, [("timestamp",)], [("attempt",)], prefix=(0,))
    if endpoint == "postmark":
        if rng.random() < 0.5:
            return Base(
                payloads.postmark_event(tag, 0),
                [("MessageID",), ("Recipient",), ("Details",), ("RecordType",), ("Tag",)],
                [("DeliveredAt",)],
                [("ServerID",)],
            )
        bounce = {
            "RecordType": "Bounce",
            "ID": index,
            "Type": "HardBounce",
            "TypeCode": 1,
            "MessageID": f"{tag}-pmb",
            "Email": f"{tag}@example.org",
            "BouncedAt": "2025-03-14T10:00:00Z",
            "Details": "smtp;550 5.1.1 unknown user",
            "Description": "The server was unable to deliver your message",
            "Metadata": {"customer_id": "C-1"},
        }
        return Base(
            bounce,
            [("MessageID",), ("Type",), ("Email",), ("Details",), ("Description",)],
            [("BouncedAt",)],
            [("TypeCode",), ("ID",)],
        )
    if endpoint == "mailgun":
        data = payloads.mailgun_event_data(tag, 0)
        if rng.random() < 0.4:
            data.update(event="failed", severity="permanent", reason="bounce")
            data["delivery-status"].update(code=550, message="5.1.1 user unknown")
        return Base(
            data,
            [
                ("id",),
                ("event",),
                ("recipient",),
                ("user-variables", "customer_id"),
                ("delivery-status", "message"),
                ("message", "headers", "message-id"),
            ],
            [("timestamp",)],
            [("delivery-status", "code"), ("delivery-status", "attempt-no")],
        )
    return other_base(other, tag)


def other_base(kind: str, tag: str) -> Base:
    """Small valid-looking tracking events of the other anymail providers."""
    if kind == "brevo":
        return Base(
            {
                "event": "delivered",
                "email": f"{tag}@example.com",
                "id": 1,
                "date": "2025-03-14 10:00:00",
                "ts_event": 1741946403,
                "message-id": f"<{tag}@example.com>",
                "tags": ["order_confirmation"],
            },
            [("message-id",), ("event",), ("email",), ("date",)],
            [("ts_event",)],
            [("id",)],
        )
    if kind == "mailjet":
        return Base(
            [
                {
                    "event": "sent",
                    "time": 1741946403,
                    "MessageID": 19421777835146490,
                    "email": f"{tag}@example.com",
                    "mj_message_id": "19421777835146490",
                    "smtp_reply": "250 OK",
                }
            ],
            [("mj_message_id",), ("event",), ("email",), ("smtp_reply",)],
            [("time",)],
            [("MessageID",)],
            prefix=(0,),
        )
    if kind == "resend":
        return Base(
            {
                "type": "email.delivered",
                "created_at": "2025-03-14T10:00:00.000Z",
                "data": {
                    "email_id": f"{tag}-re",
                    "to": [f"{tag}@example.com"],
                    "created_at": "2025-03-14T10:00:00.000Z",
                    "subject": "Your order",
                },
            },
            [("data", "email_id"), ("type",), ("data", "subject")],
            [("created_at",), ("data", "created_at")],
            [],
        )
    event = {
        "type": "delivery",
        "timestamp": "1741946403",
        "message_id": f"{tag}-sp",
        "transmission_id": f"{tag}-spt",
        "event_id": f"{tag}-spe",
        "rcpt_to": f"{tag}@example.com",
        "raw_reason": "250 OK",
    }
    return Base(
        [{"msys": {"message_event": event}}],
        [("event_id",), ("type",), ("transmission_id",), ("rcpt_to",), ("raw_reason",)],
        [("timestamp",)],
        [],
        prefix=(0, "msys", "message_event"),
    )


# --- mutations of JSON bodies: each returns (body, note, content type or None, headers) ---

Mutation = tuple[bytes, str, str | None, dict]


def huge_text(rng: random.Random, size: int) -> str:
    pattern = rng.choice(["a", "a@", "x.", "é", "a@b.c ", "0123456789", "🙂"])
    return (pattern * (size // len(pattern) + 1))[:size]


WRONG_TYPES = [None, True, 0, -1, 1.5, [], {}, [1, 2], {"a": 1}, "", " ", [None], {"": ""}]
SURROGATES = ["\ud800", "a\udfffb", "\udc00", "\ud800\ud800", "x\ud83d", "\udbff\udfff\udc00"]
NULS = ["\x00", "q\x00k", "\x00" * 10, "a\x00", "\x00@example.com"]
TIMES = [
    Raw(b"1e20"),
    1e20,
    -1,
    0,
    -62135596801,
    253402300800,
    10**15,
    10**19,
    Raw(b"1e308"),
    Raw(b"NaN"),
    Raw(b"-Infinity"),
    "99999-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2025-02-30T10:00:00Z",
    "2025-03-14T25:00:00Z",
    "+275760-09-13T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2025-03-14T10:00:00+99:00",
    "1e20",
    "-1",
    "NaN",
    "",
    "99999999999999999999",
]
NUMBERS = [
    Raw(b"1e400"),
    Raw(b"-1e400"),
    Raw(b"9" * 5000, "a 5000-digit int"),
    Raw(b"-" + b"9" * 5000, "a negative 5000-digit int"),
    Raw(b"NaN"),
    Raw(b"Infinity"),
    Raw(b"-0"),
    Raw(b"1e-400"),
    2**64,
    -(2**63) - 1,
    0.1,
    Raw(b"1" + b"0" * 400 + b".5", "a 400-digit float"),
]


def as_body(endpoint: str, data: bytes) -> bytes:
    """Mailgun's body wraps the event in its (valid, fresh) signature; others are the data."""
    if endpoint == "mailgun":
        return b'{"signature":"__MAILGUN_SIGNATURE__","event-data":' + data + b"}"
    return data


def mutate_json(family: str, rng: random.Random, base: Base, endpoint: str) -> Mutation:
    document = base.document
    if family == "valid":
        return dump(document), "valid", None, {}
    if family == "type":
        path = rng.choice(base.anything)
        value = rng.choice(WRONG_TYPES)
        set_path(document, path, value)
        return dump(document), f"{'.'.join(map(str, path))} = {describe(value)}", None, {}
    if family in ("surrogate", "nul"):
        value = rng.choice(SURROGATES if family == "surrogate" else NULS)
        if rng.random() < 0.2:
            target = document[0] if isinstance(document, list) else document
            target[value] = "x"
            return dump(document), f"a key {value!r}", None, {}
        path = rng.choice(base.strings)
        set_path(document, path, value)
        return dump(document), f"{'.'.join(map(str, path))} = {value!r}", None, {}
    if family == "timestamp":
        path = rng.choice(base.times)
        value = rng.choice(TIMES)
        set_path(document, path, value)
        return dump(document), f"{'.'.join(map(str, path))} = {describe(value)}", None, {}
    if family == "number":
        path = rng.choice(base.numbers + base.times + base.strings[:2])
        value = rng.choice(NUMBERS)
        set_path(document, path, value)
        return dump(document), f"{'.'.join(map(str, path))} = {describe(value)}", None, {}
    if family == "size":
        return mutate_size(rng, base, endpoint)
    if family == "nesting":
        depth = rng.choice([1_000, 10_000, 100_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")])
        deep = Raw(opener * depth + b"1" + closer * depth, f"{depth}-deep {opener.decode()}")
        if rng.random() < 0.4:
            return dump(deep), f"the body is {deep.label}", None, {}
        path = rng.choice(base.anything)
        set_path(document, path, deep)
        return dump(document), f"{'.'.join(map(str, path))} = {deep.label}", None, {}
    if family == "encoding":
        return mutate_encoding(rng, base)
    if family == "shape":
        return mutate_shape(rng, base)
    if family == "dup_id":
        return mutate_dup_id(rng, base, endpoint)
    return mutate_multipart(rng, dump(document))


def mutate_size(rng: random.Random, base: Base, endpoint: str) -> Mutation:
    document = base.document
    choice = rng.random()
    if choice < 0.65:
        size = rng.choice([256, 300, 1_000, 5_000, 70_000, 70_000, 1_000_000])
        path = rng.choice(base.strings)
        set_path(document, path, huge_text(rng, size))
        return dump(document), f"{'.'.join(map(str, path))} = {size} chars", None, {}
    if choice < 0.7:
        body = dump(document)
        padding = MAX_BODY + rng.choice([1, 1000, 300_000]) - len(body)
        padded = body[:-1] + b" " * padding + body[-1:]
        return padded, f"a body of {len(padded)} bytes (over the limit)", None, {}
    if choice < 0.9 and isinstance(document, list):
        count = rng.choice([1_000, 3_000])
        many = [json.loads(json.dumps(document[0])) for _ in range(count)]
        for number, item in enumerate(many):
            for key in ("event_id", "sg_event_id"):
                if key in item:
                    item[key] = f"{item[key]}-{number}"
        return dump(many), f"{count} events in one body", None, {}
    key = huge_text(rng, rng.choice([300, 100_000]))
    target = document[0] if isinstance(document, list) else document
    target[key] = "x"
    return dump(document), f"a key of {len(key)} chars", None, {}


def mutate_encoding(rng: random.Random, base: Base) -> Mutation:
    document = base.document
    choice = rng.randrange(9)
    if choice < 3:
        bad = [b'"x\xff\xfey"', b'"\xc0\xaf"', b'"caf\xe9"', b'"\xe2\x82"', b'"\xed\xa0\x80"'][
            rng.randrange(5)
        ]
        path = rng.choice(base.strings)
        set_path(document, path, Raw(bad))
        return dump(document), f"{'.'.join(map(str, path))} = bytes {bad!r}", None, {}
    text = json.dumps(document, ensure_ascii=False)
    if choice == 3:
        return "\ufeff".encode() + text.encode(), "UTF-8 with a byte-order mark", None, {}
    if choice == 4:
        return text.encode("utf-16"), "UTF-16 with a byte-order mark", None, {}
    if choice == 5:
        return text.encode("utf-16-le"), "UTF-16-LE without a byte-order mark", None, {}
    if choice == 6:
        return (
            text.encode(),
            "UTF-8 body declared charset=utf-16",
            "application/json; charset=utf-16",
            {},
        )
    if choice == 7:
        return gzip.compress(text.encode()), "gzip body", None, {"Content-Encoding": "gzip"}
    content_type = rng.choice(["text/plain", "application/xml", "", "application/json; charset=x"])
    return text.encode(), f"content type {content_type!r}", content_type, {}


SHAPES = [
    (b"1", "the number 1"),
    (b'"x"', "a string"),
    (b"true", "true"),
    (b"null", "null"),
    (b"{}", "an empty object"),
    (b"[]", "an empty array"),
    (b"[[]]", "[[]]"),
    (b"[null]", "[null]"),
    (b"[1,2,3]", "an array of numbers"),
    (b"", "an empty body"),
    (b" \n\t ", "whitespace"),
    (b"{}{}", "two objects"),
    (b"[{},]", "a trailing comma"),
    (b"{'a': 1}", "single quotes"),
    (b"{", "a truncated object"),
    (b'{"a":1,"a":2}', "a repeated key"),
]


def mutate_shape(rng: random.Random, base: Base) -> Mutation:
    document = base.document
    choice = rng.random()
    if choice < 0.5:
        body, note = rng.choice(SHAPES)
        return body, f"the body is {note}", None, {}
    first = document[0] if isinstance(document, list) else document
    if choice < 0.65:
        return dump([first, 1, None, "x"]), "an event among scalars", None, {}
    if choice < 0.8:
        lines = dump(first) + b"\n\nnot json\n" + dump(first) + b"\n"
        return lines, "JSON lines with a bad line", None, {}
    if choice < 0.9:
        return dump({"events": [first], "data": first}), "events wrapped in an object", None, {}
    return dump({f"unknown{i}": i for i in range(50)}), "an object of unknown keys", None, {}


FIXED_IDS = 5


def mutate_dup_id(rng: random.Random, base: Base, endpoint: str) -> Mutation:
    document = base.document
    if endpoint in ("api", "sw"):
        first = document[0] if isinstance(document, list) else document
        if rng.random() < 0.5:
            copies = []
            for number in range(rng.randint(2, 20)):
                item = dict(first)
                item["event_id"] = f"{first['event_id']}-{number}"
                copies.append(item)
            twin = dict(copies[-1])
            twin["notification_key"] = f"{twin['notification_key']}-other"
            copies.insert(rng.randrange(len(copies)), twin)
            return dump(copies), "one event_id twice with different notification_keys", None, {}
        first["event_id"] = f"fz-fixed-{endpoint}-{rng.randrange(FIXED_IDS)}"
        first["notification_key"] = f"fz-key-{rng.randrange(10**9)}"
        return dump(first), f"stored event_id {first['event_id']} under another key", None, {}
    if endpoint == "sendgrid":
        twin = dict(document[0])
        twin["email"] = "someone-else@example.com"
        return dump([document[0], twin]), "one sg_event_id twice, different content", None, {}
    path = base.strings[0]
    set_path(document, path, f"fz-fixed-{endpoint}-{rng.randrange(FIXED_IDS)}")
    return dump(document), f"{'.'.join(map(str, path))} from a small fixed pool", None, {}


def mutate_multipart(rng: random.Random, body: bytes) -> Mutation:
    boundary = "fuzzboundary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'.encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    cases = [
        (body, "multipart/form-data", "multipart without a boundary"),
        (part, "multipart/form-data; boundary=other", "a boundary not in the body"),
        (part, "multipart/form-data; boundary=", "an empty boundary"),
        (part, f"multipart/form-data; boundary={'b' * 300}", "a 300-character boundary"),
        (part[:-8], f"multipart/form-data; boundary={boundary}", "an unterminated part"),
        (part, f"multipart/form-data; boundary={boundary}", "a well-formed multipart body"),
        (part, "multipart/form-data; boundary=\u00e9t\u00e9", "a non-ASCII boundary"),
    ]
    data, content_type, note = rng.choice(cases)
    return data, note, content_type, {}


# --- Twilio: form bodies ---


def twilio_request(family: str, rng: random.Random, index: int) -> tuple[Request, str]:
    params = payloads.twilio_params(f"fz{index}", rng.randrange(10))
    note = family
    body: bytes | None = None
    content_type = FORM
    signed_params: list | None = None

    def replace(name: str, value: str) -> None:
        nonlocal params
        params = [(k, value if k == name else v) for k, v in params]
        if name not in dict(params):
            params.append((name, value))

    if family == "valid":
        note = "valid"
    elif family in ("type", "dup_id"):
        choice = rng.randrange(6)
        if choice == 0:
            params = [(k, v) for k, v in params if k not in ("MessageSid", "SmsSid")]
            note = "no MessageSid"
        elif choice == 1:
            params = [(k, v) for k, v in params if k not in ("MessageStatus", "SmsStatus")]
            note = "no MessageStatus"
        elif choice == 2:
            replace("MessageStatus", "bogus")
            note = "unknown MessageStatus"
        elif choice == 3:
            params.append(("MessageStatus", "failed"))
            note = "MessageStatus twice, different values"
        elif choice == 4:
            params.append(("MessageSid", f"SMother{index}"))
            note = "MessageSid twice, different values"
        else:
            replace("MessageStatus", "received")
            note = "an inbound status"
    elif family == "size":
        if rng.random() < 0.5:
            name = rng.choice(["To", "ErrorMessage", "MessageSid", "From"])
            size = rng.choice([1_000, 100_000, 1_000_000])
            replace(name, huge_text(rng, size))
            note = f"{name} of {size} chars"
        else:
            count = rng.choice([1_000, 20_000])
            params += [(f"Extra{i}", "x") for i in range(count)]
            note = f"{count} extra fields"
    elif family == "encoding":
        choice = rng.randrange(4)
        body = payloads.twilio_body(params)
        if choice == 0:
            body = body.replace(b"To=", b"To=%FF%FE", 1)
            note = "To with invalid UTF-8 (%FF%FE)"
        elif choice == 1:
            body = body.replace(b"To=", b"To=\xe9\xff", 1)
            note = "raw non-ASCII bytes"
        elif choice == 2:
            content_type = f"{FORM}; charset=utf-16"
            note = "declared charset=utf-16"
        else:
            body += b"&Bad=%zz%"
            note = "bad percent escapes"
        signed_params = params
    elif family == "surrogate":
        value = rng.choice(SURROGATES)
        name = rng.choice(["To", "MessageSid", "ErrorMessage"])
        if name not in dict(params):
            params.append((name, ""))
        # Replaced, not appended: Twilio's parser reads the first value of a repeated field.
        body = "&".join(
            f"{quote(k)}={quote(value if k == name else v, errors='surrogatepass')}"
            for k, v in params
        ).encode()
        note = f"{name} = {value!r} (as %ED%A0%80-style bytes)"
    elif family == "nul":
        name = rng.choice(["To", "MessageSid", "MessageStatus"])
        replace(name, dict(params).get(name, "x") + "\x00")
        note = f"{name} with NUL"
    elif family == "timestamp":
        value = rng.choice(
            ["9999999999", "0000000000", "9913320000", "2513329999", "1e20", "-1", "9" * 14, ""]
        )
        replace("RawDlrDoneDate", value)
        note = f"RawDlrDoneDate = {value!r}"
    elif family == "number":
        value = rng.choice(["1e400", "9" * 5000, "-1", "NaN", "0x10"])
        name = rng.choice(["ErrorCode", "NumSegments", "To"])
        replace(name, value)
        note = f"{name} = {describe(value)}"
    elif family == "nesting":
        depth = rng.choice([1_000, 100_000])
        replace("ErrorMessage", "[" * depth)
        params.append(("a" + "[b]" * min(depth, 10_000), "x"))
        note = f"{depth} brackets in a value and nested field names"
    elif family == "shape":
        body, note = rng.choice(
            [
                (b"", "an empty body"),
                (b"=", "a lone ="),
                (b"&&&", "only separators"),
                (b'{"MessageSid": "SM1", "MessageStatus": "sent"}', "JSON as a form"),
                (b"MessageSid", "a name without a value"),
            ]
        )
        signed_params = []
    else:  # multipart
        boundary = "twilioboundary"
        parts = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in params
        )
        whole = parts + f"--{boundary}--\r\n".encode()
        body, content_type, note = rng.choice(
            [
                (whole, f"multipart/form-data; boundary={boundary}", "well-formed multipart"),
                (whole, "multipart/form-data", "multipart without a boundary"),
                (whole, "multipart/form-data; boundary=nothere", "a boundary not in the body"),
                (whole[:-20], f"multipart/form-data; boundary={boundary}", "unterminated"),
                (whole, f"multipart/form-data; boundary={'z' * 300}", "a 300-char boundary"),
                (whole, "multipart/form-data; boundary=", "an empty boundary"),
            ]
        )
        signed_params = params
    if body is None:
        body = payloads.twilio_body(params)
    request = Request(
        "twilio",
        body,
        content_type=content_type,
        twilio_params=signed_params,
    )
    return request, note


# --- one request, from (seed, index) alone ---


def generate(seed: int, index: int) -> tuple[Request, str, str]:
    """Request `index` of `seed`, its family and a note saying what is odd about it."""
    rng = random.Random(f"{seed}:{index}")
    family = rng.choice(FAMILIES)
    endpoint = rng.choice(ENDPOINTS)
    other = rng.choice(OTHER_PROVIDERS)
    mark = f"{seed}:{index}"
    if endpoint == "twilio":
        request, note = twilio_request(family, rng, index)
        request.mark = mark
        return request, family, f"twilio: {note}"
    base = base_for(endpoint, rng, index, other)
    body, note, content_type, headers = mutate_json(family, rng, base, endpoint)
    name = other if endpoint == "other" else endpoint
    request = Request(
        name,
        as_body(endpoint, body),
        content_type=content_type if content_type is not None else "application/json",
        headers=headers,
        mark=mark,
    )
    return request, family, f"{name}: {note}"


def fuzz_client(job: tuple) -> list[tuple]:
    """Send requests `indices` of `seed` (generated here); returns what each got."""
    base_url, credentials, seed, indices, deadline = job
    sender = Sender(base_url, credentials, timeout=120)
    results = []
    for index in indices:
        if time.time() > deadline:
            break
        request, family, note = generate(seed, index)
        answer = sender.send(request)
        results.append(
            (index, family, note, answer.status, answer.body[:300], answer.error, len(request.body))
        )
    sender.close()
    return results


def send_fuzz(
    base_url: str, credentials: Credentials, seed: int, indices: list[int], processes: int, deadline
) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    jobs = [
        (base_url, credentials, seed, indices[part::processes], deadline)
        for part in range(processes)
        if indices[part::processes]
    ]
    results: list[tuple] = []
    with context.Pool(len(jobs)) as pool:
        for part in pool.imap_unordered(fuzz_client, jobs):
            results.extend(part)
    return sorted(results)


# --- judging ---


def verdicts(results: list[tuple], raws: dict[str, list[tuple]], seed: int):
    """Per request: (family, answer/outcome cell, failure kind or None)."""
    judged = []
    for index, family, note, status, body, error, size in results:
        rows = raws.get(f"{seed}:{index}", [])
        outcomes = sorted({row[0] for row in rows})
        cell = f"{status or 'none'}/{'+'.join(outcomes) or '-'}"
        failure = judge(status, rows)
        judged.append((index, family, note, cell, failure, status, body, error, rows, size))
    return judged


def judge(status: int, rows: list[tuple]) -> str | None:
    outcomes = {row[0] for row in rows}
    if status == 0:
        return "no answer"
    if status >= 500:
        return f"answered {status}"
    if "received" in outcomes:
        return f"answered {status}, raw row left received"
    if 200 <= status < 300:
        if not rows:
            return f"answered {status}, nothing stored"
        if outcomes - {"parsed", "duplicate", "ignored"}:
            return f"answered {status}, raw row {'+'.join(sorted(outcomes))} (not recorded)"
        return None
    if status in (401, 403, 406, 429):  # refused: kept as rejected, or only counted
        if outcomes - {"rejected"}:
            return f"answered {status}, raw row {'+'.join(sorted(outcomes))}"
        return None
    if status == 413:
        return None if not rows else "answered 413 yet stored"
    if status in (400, 422):
        if not rows:
            return f"answered {status}, body not kept"
        # A body that could not even be read to check its signature is kept as an
        # untrusted (rejected) call: that is kept too, with its reason.
        if outcomes - {"quarantined", "rejected"}:
            return f"answered {status}, raw row {'+'.join(sorted(outcomes))}"
        if any(not (row[1] or "").strip() for row in rows):
            return f"answered {status}, kept without a reason"
        return None
    return f"answered {status}"


def raw_rows_by_mark() -> dict[str, list[tuple]]:
    from notifwatch.ingest.models import RawEvent

    found: dict[str, list[tuple]] = defaultdict(list)
    for outcome, reason, headers in RawEvent.objects.values_list("outcome", "reason", "headers"):
        mark = (headers or {}).get(MARK_HEADER)
        if mark:
            found[mark].append((outcome, reason))
    return found


def print_table(judged: list[tuple]) -> None:
    by_family: dict[str, Counter] = defaultdict(Counter)
    failures = Counter()
    for _index, family, _note, cell, failure, *_ in judged:
        by_family[family][cell] += 1
        if failure:
            failures[family] += 1
    print("  answers/outcomes per input family (status/raw outcome: count):")
    width = max(len(f) for f in FAMILIES)
    for family in FAMILIES:
        cells = by_family.get(family)
        if not cells:
            continue
        text = ", ".join(f"{cell} {n}" for cell, n in cells.most_common())
        total = sum(cells.values())
        print(f"    {family:<{width}}  {total:>5}  fail {failures[family]:>4}  {text}")


def print_failures(judged: list[tuple], seed: int, examples: int) -> None:
    kinds: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for item in judged:
        if item[4]:
            kinds[(item[1], item[4])].append(item)
    if not kinds:
        return
    print("  failures (family / kind: count; reproduce with --seed S --only INDEX):")
    for (family, kind), items in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        print(f"    {family} / {kind}: {len(items)}")
        for index, _family, note, _cell, _failure, status, body, error, rows, _size in items[
            :examples
        ]:
            reason = rows[0][1][:100] if rows else ""
            answer = error or body[:100].decode("utf-8", "replace")
            print(f"      --seed {seed} --only {index}: {note[:110]}")
            print(f"         -> {status} {answer!r}{f' | raw: {reason!r}' if reason else ''}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability fuzz")
    parser.add_argument("--quick", action="store_true", help="300 requests")
    parser.add_argument("--requests", type=int, help="how many (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="comma-separated indices: send just those (reproduce)")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--examples", type=int, default=3, help="reproducers per failure kind")
    parser.add_argument("--deadline", type=float, help="seconds for sending (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and logs")
    parser.add_argument("--list", action="store_true", help="print every request's outcome")
    args = parser.parse_args(argv)
    if args.only:
        indices = [int(i) for i in args.only.split(",") if i.strip()]
    else:
        indices = list(range(args.requests or (300 if args.quick else 2000)))
    deadline = time.time() + (args.deadline or (300 if args.quick else 900))
    started = time.monotonic()
    print(
        f"fuzz: {len(indices)} requests, seed {args.seed}, {len(FAMILIES)} input families, "
        f"endpoints {', '.join(ENDPOINTS[:-1])} and {', '.join(OTHER_PROVIDERS)}",
        flush=True,
    )
    with running_app("fuzz", keep=args.keep) as app:
        sending = time.monotonic()
        results = send_fuzz(
            app.base_url,
            app.credentials,
            args.seed,
            indices,
            1 if args.only else args.processes,
            deadline,
        )
        sent_for = time.monotonic() - sending
        print(f"  sent {len(results)} requests in {sent_for:.0f} s", flush=True)
        wait_for_received(10 if args.quick or args.only else 60)
        judged = verdicts(results, raw_rows_by_mark(), args.seed)
        from notifwatch.ingest.models import Outcome, RawEvent

        received = RawEvent.objects.filter(outcome=Outcome.RECEIVED).count()
        failed = [item for item in judged if item[4]]
        app.keep_logs = bool(failed)
        if args.only:
            for index, family, note, _cell, failure, status, body, error, rows, size in judged:
                print(f"    #{index} {family}: {note} ({size} bytes)")
                print(f"      answer {status} {error or body.decode('utf-8', 'replace')!r}")
                for outcome, reason in rows:
                    print(f"      raw row {outcome}: {reason[:300]!r}")
                print(f"      {failure or 'ok'}")
        if args.list:
            for index, family, note, cell, failure, *_ in judged:
                print(
                    f"    {index:>5} {family:<9} {cell:<16} {note[:90]}{' FAIL' if failure else ''}"
                )
        print_table(judged)
        print_failures(judged, args.seed, len(indices) if args.only else args.examples)
        for line in log_excerpt(app.server.log, limit=8):
            print(f"  server log: {line}")
    five = sum(1 for item in judged if item[5] >= 500)
    no_answer = sum(1 for item in judged if item[5] == 0)
    unkept = sum(
        1 for item in judged if (item[4] or "").startswith(("answered 400", "answered 422"))
    )
    problems = len(failed) + (len(indices) - len(results))
    if len(results) < len(indices):
        print(f"  FAIL deadline: {len(indices) - len(results)} requests not sent")
    verdict = "FAIL" if problems else "PASS"
    print(
        f"fuzz: {verdict} requests={len(results)} seed={args.seed} failures={len(failed)} "
        f"5xx={five} no-answer={no_answer} received={received} 4xx-not-quarantined={unkept} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if problems else 0
