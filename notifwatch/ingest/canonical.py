"""The canonical event: what every source's records are turned into before recording."""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import phonenumbers
from django.conf import settings

EVENT_TYPES = (
    "queued",
    "sent",
    "deferred",
    "delivered",
    "bounced",
    "failed",
    "suppressed",
    "complained",
    "opened",
    "clicked",
)
# Words senders commonly use for the canonical types.
EVENT_TYPE_SYNONYMS = {
    "processed": "sent",
    "accepted": "sent",
    "dispatched": "sent",
    "delivery": "delivered",
    "bounce": "bounced",
    "dropped": "failed",
    "undelivered": "bounced",
    "complaint": "complained",
    "spamreport": "complained",
    "open": "opened",
    "click": "clicked",
}
CHANNELS = ("email", "sms", "push", "in_app", "webhook", "other")
CHANNEL_SYNONYMS = {
    "mail": "email",
    "text": "sms",
    "mms": "sms",
    "inapp": "in_app",
    "in-app": "in_app",
}

MAX_KEY = 255
MAX_TEXT = 1000  # provider error texts are truncated before storing
MAX_REFS = 50

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class FieldProblem(ValueError):
    """A record that cannot become a canonical event; `field` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class CanonicalEvent:
    event_id: str
    occurred_at: datetime
    notification_key: str
    status: str
    channel: str = "other"
    purpose: str = ""
    attempt: int | None = None
    customer_id: str = ""
    recipient: str = ""
    refs: dict[str, str] = field(default_factory=dict)
    provider: str = ""
    provider_message_id: str = ""
    error_code: str = ""
    error_message: str = ""


def text(value, field_name: str, limit: int = MAX_KEY) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise FieldProblem(field_name, f"expected text, got {type(value).__name__}")
    value = str(value)
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL, and dropping it would merge "q\0k" with "qk".
        raise FieldProblem(field_name, "contains a NUL character (\\u0000)")
    return value.strip()[:limit]


# Outside these an event time is a sender's bug (epoch 0 from an empty field, a year 99999),
# and some of them cannot be converted between time zones or stored by every database.
EARLIEST_EVENT = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)


def parse_occurred_at(value) -> datetime:
    """ISO 8601 text, or epoch seconds / milliseconds as a number or digits."""
    if value is None or value == "":
        raise FieldProblem("occurred_at", "missing")
    if isinstance(value, bool):
        raise FieldProblem("occurred_at", "expected a timestamp, got true/false")
    if isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value.strip()):
        value = float(value)
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000 if value > 100_000_000_000 else value
            parsed = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise FieldProblem(
                "occurred_at", f"epoch value {short(value)} is out of range"
            ) from exc
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise FieldProblem(
                "occurred_at", f"{value[:40]!r} is not an ISO 8601 timestamp"
            ) from exc
        if parsed.tzinfo is None:
            # A timestamp without an offset is read as UTC, the convention of most log writers.
            parsed = parsed.replace(tzinfo=UTC)
    else:
        raise FieldProblem("occurred_at", f"expected a timestamp, got {type(value).__name__}")
    try:
        in_range = EARLIEST_EVENT <= parsed <= LATEST_EVENT
    except OverflowError:
        in_range = False
    if not in_range:
        raise FieldProblem(
            "occurred_at", f"{short(value)} is out of range (expected between 1970 and 2100)"
        )
    return parsed


def short(value) -> str:
    """A value for an error message: never huge, never itself an error (5,000-digit ints)."""
    try:
        text = repr(value)
    except ValueError:
        return "a number too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


def parse_status(value) -> str:
    status = text(value, "status", 64).lower()
    if not status:
        raise FieldProblem("status", "missing")
    status = EVENT_TYPE_SYNONYMS.get(status, status)
    if status not in EVENT_TYPES:
        raise FieldProblem(
            "status", f"unknown status value {status!r} (expected one of {', '.join(EVENT_TYPES)})"
        )
    return status


def parse_channel(value) -> str:
    channel = text(value, "channel", 32).lower()
    if not channel:
        return "other"
    channel = CHANNEL_SYNONYMS.get(channel, channel)
    if channel not in CHANNELS:
        raise FieldProblem(
            "channel", f"unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})"
        )
    return channel


def parse_attempt(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise FieldProblem("attempt", "expected a whole number")
    try:
        attempt = int(str(value).strip())
    except ValueError as exc:
        raise FieldProblem("attempt", f"{short(value)} is not a whole number") from exc
    if attempt < 0 or attempt > 10_000:
        raise FieldProblem("attempt", f"{attempt} is out of range")
    return attempt


def parse_refs(value) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if isinstance(value, str) and value.lstrip().startswith("{"):
        # A CSV cell holding the refs object as JSON.
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise FieldProblem("refs", "not a valid JSON object") from exc
    if not isinstance(value, dict):
        raise FieldProblem("refs", "expected an object of reference names to ids")
    if len(value) > MAX_REFS:
        # Each reference is an indexed row: a body must not turn into 200,000 of them.
        raise FieldProblem("refs", f"{len(value)} references; at most {MAX_REFS} per event")
    return {str(k)[:64]: text(v, f"refs.{k}", 200) for k, v in value.items() if v not in (None, "")}


def normalise_recipient(value: str, channel: str) -> str:
    """Emails trimmed and lower-cased, phone numbers in E.164; anything else as given."""
    value = value.strip()
    if not value:
        return ""
    if "@" in value:
        return value.lower()
    if channel == "sms" or value.startswith("+") or re.fullmatch(r"[\d\s().-]{7,20}", value):
        if E164.match(value):
            return value
        try:
            number = phonenumbers.parse(value, settings.NOTIFWATCH_PHONE_REGION)
        except phonenumbers.NumberParseException:
            return value
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return value


def canonical_events(values: dict, fallback_event_id: str) -> list[CanonicalEvent]:
    """One event per recipient: a provider message to several people has an outcome for each."""
    recipients = values.get("recipient")
    if not isinstance(recipients, list):
        return [canonical_event(values, fallback_event_id)]
    recipients = [r for r in recipients if r not in (None, "")]
    if len(recipients) <= 1:
        return [
            canonical_event(
                {**values, "recipient": recipients[0] if recipients else None}, fallback_event_id
            )
        ]
    events = []
    for recipient in recipients:
        event = canonical_event({**values, "recipient": recipient}, fallback_event_id)
        event.notification_key = f"{event.notification_key}:{event.recipient}"[:MAX_KEY]
        event.event_id = f"{event.event_id}:{event.recipient}"[:MAX_KEY]
        events.append(event)
    return events


def canonical_event(values: dict, fallback_event_id: str) -> CanonicalEvent:
    """Validate and coerce one record's canonical fields; raise FieldProblem naming the field."""
    status = parse_status(values.get("status"))
    # A failed attempt the sender will retry is a deferral, not a final failure.
    if status == "failed" and values.get("retryable") in (True, "true", "True", 1):
        status = "deferred"
    channel = parse_channel(values.get("channel"))
    provider_message_id = text(values.get("provider_message_id"), "provider_message_id")
    notification_key = (
        text(values.get("notification_key"), "notification_key") or provider_message_id
    )
    if not notification_key:
        raise FieldProblem(
            "notification_key", "missing (and no provider_message_id to fall back on)"
        )
    return CanonicalEvent(
        event_id=text(values.get("event_id"), "event_id") or fallback_event_id,
        occurred_at=parse_occurred_at(values.get("occurred_at")),
        notification_key=notification_key,
        status=status,
        channel=channel,
        purpose=text(values.get("purpose"), "purpose", 200),
        attempt=parse_attempt(values.get("attempt")),
        customer_id=text(values.get("customer_id"), "customer_id", 200),
        recipient=normalise_recipient(text(values.get("recipient"), "recipient", 320), channel),
        refs=parse_refs(values.get("refs")),
        provider=text(values.get("provider"), "provider", 64).lower(),
        provider_message_id=provider_message_id,
        error_code=text(values.get("error_code"), "error_code", 100),
        error_message=text(values.get("error_message"), "error_message", MAX_TEXT),
    )
