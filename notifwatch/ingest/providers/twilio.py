"""Twilio message status callbacks (SMS, MMS, WhatsApp and the other Twilio channels).

Twilio POSTs one application/x-www-form-urlencoded body per status change of a message to the
StatusCallback URL, signed in `X-Twilio-Signature` with the account auth token (or, with
Twilio's Webhooks configuration API, a SharedKey secret named in
`X-Twilio-Webhooks-Signature-Settings`).

Authentication: twilio's own RequestValidator, over the PUBLIC URL of the source
(NOTIFWATCH_BASE_URL + /hooks/<slug>/ + the query string). Behind a TLS-terminating proxy the
request itself says http://internal-host/..., which is not what Twilio signed.

Interpretation:
- one callback is one delivery event of the message `MessageSid`; the notification is found by
  that provider message id (the send record that created it carries the customer), so the
  notification key is left empty;
- statuses: queued/accepted/scheduled -> queued, sending/sent -> sent, delivered/read/
  partially_delivered -> delivered. `undelivered` (the carrier's receipt says it did not arrive)
  follows the one rule for refusals (README "Bounced or failed"): bounced when the error code's
  reason is the customer's number or handset (unreachable, unknown number, landline), failed
  for everything else (a carrier filter, our unregistered sender, an unknown error, no code at
  all). `failed` and `canceled` mean Twilio never handed the message to a carrier (queue
  overflow, account or sender setup, a request it refused): failed, whatever the code. An
  opt-out code (21610, or a WhatsApp block) becomes "suppressed" when it is recorded, from
  either status. Inbound messages and voice call callbacks are ignored; an unknown status is
  quarantined so that it shows up instead of vanishing;
- channel: "sms" for phone numbers; addresses with a channel prefix ("whatsapp:+1...",
  "messenger:...", "rcs:...") are channel "other", with the prefix stripped from the recipient
  (kept in the raw form) so a phone number finds the customer's notifications on every channel;
- callbacks carry no event time. `RawDlrDoneDate` (the carrier's delivery receipt, YYMMDDhhmm,
  UTC) is used when present and not later than arrival, else the arrival time of the raw event.
  Arrival order can be wrong (a late "sent" after "delivered"): settling never lets queued/sent
  overwrite a final status, so the order of those does not matter;
- callbacks carry no event id and Twilio repeats them: the event id is the content that makes
  an event (MessageSid, MessageStatus, ErrorCode), so a repeat only bumps a duplicate counter.
"""

import re
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from notifwatch.failures.reasons import classify_reason, refusal_status
from notifwatch.ingest.models import RawEvent, Source
from notifwatch.ingest.providers.base import (
    Parsed,
    ProviderRecord,
    Rejected,
    SetupHelp,
    public_webhook_url,
    register,
    request_from_raw,
)

FORM_TYPE = "application/x-www-form-urlencoded"

# Twilio's MessageStatus values and the canonical event type each one is.
STATUS_MAP = {
    "accepted": "queued",  # a Messaging Service took the request, no sender chosen yet
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",  # WhatsApp / RCS read receipt: delivered, and then some
    "partially_delivered": "delivered",
    "undelivered": "bounced",  # or failed: decided from the error code by refused_event_type
    "failed": "failed",
    "canceled": "failed",
}
# Statuses of messages TO us (someone pointed the incoming-message webhook here).
INBOUND_STATUSES = {"receiving", "received"}

CHANNEL_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(.+)$", re.IGNORECASE)
DLR_DATE = re.compile(r"^\d{10}(\d{2})?$")


def public_url(source: Source, request: HttpRequest) -> str:
    """The URL Twilio called and signed: the public address, never the proxied request's."""
    url = public_webhook_url(source)
    query = request.META.get("QUERY_STRING", "")
    return f"{url}?{query}" if query else url


class TwilioAdapter:
    kind = "twilio"
    setup = SetupHelp(
        events=(
            "Paste the URL above as the StatusCallback of your messages: either the "
            "StatusCallback parameter of each Messages API request, or, for a Messaging Service, "
            'Messaging > Services > (your service) > Integration > "Status callback URL" '
            '(set "Send a webhook" / deliver status callbacks). Twilio then reports every '
            "status change (queued, sent, delivered, undelivered, failed, read): nothing to "
            "pick. Send your own message records too (API or log import) with the MessageSid as "
            "provider_message_id: callbacks carry no customer, and are joined to your record "
            "by that id."
        ),
        secret=(
            "The secret is your Twilio auth token (Console > Account > API keys & tokens > Auth "
            "token; the primary one of the account that sends): `add_source SLUG --kind twilio "
            "--secret <auth token>`. If you sign webhooks with a Twilio SharedKey instead, the "
            "secret is that key's secret. Rotating the auth token in Twilio means updating it "
            "here: until then every callback is refused as a signature mismatch."
        ),
        notes=(
            "Twilio signs the exact URL it calls, so NOTIFWATCH_BASE_URL must be the public "
            "https:// address Twilio uses (the one above), not an internal host name: behind a "
            "TLS-terminating proxy notifwatch checks signatures against that address, not the "
            "address the proxy forwards to. Keep any query string you add to the URL exactly "
            'as pasted. WhatsApp and other prefixed senders are recorded with channel "other".'
        ),
    )

    def authenticate(self, source: Source, request: HttpRequest) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise Rejected(f"missing {SIGNATURE_HEADER}", status=403)
        if not source.signing_key:
            raise Rejected("no Twilio auth token is set for this source", status=403)
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
            raise Rejected(f"unsupported signature algorithm {algorithm[:40]!r}", status=403)
        validator = RequestValidator(source.signing_key)
        if not validator.validate(public_url(source, request), request.POST, signature, algorithm):
            raise Rejected("signature mismatch", status=403)

    def parse(self, source: Source, raw: RawEvent) -> Parsed:
        try:
            form = read_form(raw)
        except ValueError as problem:
            return Parsed(problems=[{"index": 0, "field": None, "message": str(problem)}])
        result = Parsed()
        sid = field(form, "MessageSid", "SmsSid")
        status = field(form, "MessageStatus", "SmsStatus").lower()
        if not sid:
            if field(form, "CallSid"):
                result.ignored.append("Twilio voice call callback, not a message status")
            else:
                result.problems.append(
                    {"index": 0, "field": "provider_message_id", "message": "MessageSid missing"}
                )
            return result
        if status in INBOUND_STATUSES:
            result.ignored.append(f"Twilio inbound message ({status}), not a delivery outcome")
            return result
        if not status:
            result.problems.append(
                {"index": 0, "field": "status", "message": "MessageStatus missing"}
            )
            return result
        event_type = STATUS_MAP.get(status)
        if event_type is None:
            result.problems.append(
                {
                    "index": 0,
                    "field": "status",
                    "message": f"unknown Twilio MessageStatus {status!r} "
                    f"(known: {', '.join(sorted(STATUS_MAP))})",
                }
            )
            return result
        error_code = field(form, "ErrorCode")
        if error_code in ("0", "None"):
            error_code = ""
        error_message = field(form, "ErrorMessage", "ChannelStatusMessage")
        if status == "undelivered":
            event_type = refused_event_type(error_code, error_message)
        if status == "canceled" and not error_message:
            error_message = "The message was canceled before it was sent."
        channel, recipient = channel_and_recipient(field(form, "To"), field(form, "ChannelPrefix"))
        result.records.append(
            ProviderRecord(
                values={
                    "event_id": event_id(sid, status, error_code),
                    "occurred_at": occurred_at(field(form, "RawDlrDoneDate"), raw.received_at),
                    "notification_key": "",
                    "status": event_type,
                    "channel": channel,
                    "recipient": recipient,
                    "provider": "twilio",
                    "provider_message_id": sid,
                    "error_code": error_code,
                    "error_message": error_message,
                },
                raw=form,
            )
        )
        return result

    def reply(self, source: Source, raw: RawEvent) -> HttpResponse | None:
        return None  # Twilio only needs a 2xx; the body is ignored.


def read_form(raw: RawEvent) -> dict:
    """The callback's form fields, from the stored bytes (single values as strings)."""
    request = request_from_raw(raw)
    content_type = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        shown = content_type or "no content type"
        raise ValueError(f"expected a form body ({FORM_TYPE}), got {shown!r}")
    try:
        # Parsed from the bytes the way Django parses a urlencoded POST (request.POST of a rebuilt
        # request stays empty: its content type is only in META).
        form = QueryDict(request.body, encoding=settings.DEFAULT_CHARSET)
        return {name: values[0] if len(values) == 1 else values for name, values in form.lists()}
    except Exception as exc:  # a malformed body must quarantine, not crash processing
        raise ValueError(f"unreadable form body: {exc}") from exc


def field(form: dict, *names: str) -> str:
    """The first non-empty of these fields, as text (a repeated field gives its last value)."""
    for name in names:
        value = form.get(name)
        if isinstance(value, list):
            value = value[-1] if value else ""
        if value and value.strip():
            return value.strip()
    return ""


def refused_event_type(error_code: str, error_message: str) -> str:
    """Bounced or failed for an `undelivered` message, from what its error code means.

    Explained the way recording explains it (code, then message), so the status and the reason
    shown beside it agree. Unlike an email provider's bounce, Twilio's `undelivered` names no
    side: without a code or text the refusal is unexplained, and an unexplained refusal is ours
    or the provider's to look into (failed), not the customer's.
    """
    reason = classify_reason("twilio", error_code, error_message)
    return refusal_status(reason) if reason is not None else "failed"


def channel_and_recipient(to: str, channel_prefix: str | None) -> tuple[str, str]:
    to = (to or "").strip()
    prefixed = CHANNEL_PREFIX.match(to)
    if prefixed and not to.lower().startswith(("tel:", "sms:")):
        return "other", prefixed.group(2).strip()
    if prefixed:
        to = prefixed.group(2).strip()
    if channel_prefix and channel_prefix.strip().lower() not in ("sms", "mms"):
        return "other", to
    return "sms", to


def event_id(sid: str, status: str, error_code: str) -> str:
    """Same callback content, same id: readable, and a repeat only counts as a duplicate."""
    return f"{sid}:{status}:{error_code}" if error_code else f"{sid}:{status}"


def occurred_at(dlr_done: str | None, received_at: datetime) -> str:
    """The carrier receipt's time when it is usable, else when the callback arrived."""
    dlr = parse_dlr_date(dlr_done)
    if dlr is not None and dlr <= received_at:
        return dlr.isoformat()
    return received_at.isoformat()


def parse_dlr_date(value: str | None) -> datetime | None:
    """RawDlrDoneDate: YYMMDDhhmm (sometimes with seconds), UTC; None when unreadable."""
    value = (value or "").strip()
    if not DLR_DATE.match(value):
        return None
    try:
        fmt = "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M"
        return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


adapter = register(TwilioAdapter())
