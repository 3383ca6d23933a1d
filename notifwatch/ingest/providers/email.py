"""Email provider adapters: django-anymail's tracking webhooks, refined with the provider's event.

Every email provider whose tracking webhook django-anymail understands has an adapter here. The
provider's body is read by anymail's own webhook view (`run_validators`, `parse_events`); what
anymail normalises away (Mailgun temporary failures and delivery-status codes, Postmark TypeCodes,
SES bounce types, SendGrid drop reasons) is read back from its `esp_event`, which is also kept
as the record's raw form.

Authentication, per source:
- `credential_hash` set (the secret was "user:password"): the request must carry those basic-auth
  credentials (`https://user:password@host/hooks/<slug>/`). Only the hash is kept, so the check is
  ours; anymail's own basic-auth validator is switched off.
- `signing_key` set: anymail's signature validator runs with it (Mailgun signing key, Mandrill
  webhook key, MailerSend / Mailtrap / Resend signing secret, Postal public key, Unisender Go API
  key, SendGrid signed-webhook verification key).
- both set: both must pass. Neither: every call is refused, so an unconfigured source is visible.
Amazon SES arrives through SNS: basic auth says the call is meant for us, the SNS message
signature (verified here; anymail does not) says it comes from Amazon.

Interpretation: one record per anymail event (one per recipient). Statuses follow anymail's event
types, with one rule for a message the receiving side refused for good (README "Bounced or
failed"): it is "bounced" or "failed" by what its reason means, never by the provider's word for
it. A rejection before any attempt is "suppressed" when a suppression list was the cause, else
"failed". Each provider's own codes and event types (TypeCodes, severities, bounce types) are read
by its adapter; unsubscribes, auto-replies, subscription changes and unknown event types are
recognised but are not delivery outcomes, so they are ignored with a readable reason.
"""

import hashlib
import json
import logging
import math
import re
import warnings
from base64 import b64decode
from binascii import Error as Base64Error
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailWarning,
    AnymailWebhookValidationFailure,
)
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.utils import get_request_basic_auth
from anymail.webhooks.amazon_ses import AmazonSESBaseWebhookView, AmazonSESTrackingWebhookView
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailersend import MailerSendTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.mailjet import MailjetTrackingWebhookView
from anymail.webhooks.mailtrap import MailtrapTrackingWebhookView
from anymail.webhooks.mandrill import MandrillCombinedWebhookView
from anymail.webhooks.postal import PostalTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.resend import ResendTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from anymail.webhooks.sparkpost import SparkPostTrackingWebhookView
from anymail.webhooks.unisender_go import UnisenderGoTrackingWebhookView
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict

from notifwatch.failures.reasons import Reason, classify_reason, refusal_status
from notifwatch.ingest.canonical import MAX_TEXT
from notifwatch.ingest.credentials import matches
from notifwatch.ingest.models import RawEvent, Source, UsedWebhookToken
from notifwatch.ingest.providers.base import (
    Parsed,
    ProviderRecord,
    Rejected,
    SetupHelp,
    public_webhook_url,
    register,
    request_from_raw,
)

logger = logging.getLogger(__name__)

# Anymail views refuse to be built without their signing secret, even to parse a stored body
# (which needs none): this stands in for it there.
NOT_USED_FOR_PARSING = "not-used-for-parsing"

STATUS_BY_EVENT_TYPE = {
    EventType.QUEUED: "queued",
    EventType.SENT: "sent",
    EventType.DEFERRED: "deferred",
    EventType.DELIVERED: "delivered",
    # (EventType.BOUNCED: bounced or failed by its reason, see AnymailAdapter.refusal)
    EventType.FAILED: "failed",
    EventType.COMPLAINED: "complained",
    EventType.OPENED: "opened",
    EventType.CLICKED: "clicked",
}
# Recognised, but not an outcome of the message they mention. A message not sent because of an
# earlier opt-out arrives as a rejection ("suppressed"), never as one of these.
NOT_OUTCOMES = {
    EventType.UNSUBSCRIBED: "an opt-out from future messages, not a delivery outcome",
    EventType.SUBSCRIBED: "a subscription change, not a delivery outcome",
    EventType.AUTORESPONDED: "an automatic reply (such as an out-of-office note), not a delivery outcome",
    EventType.INBOUND: "an incoming message, not a delivery outcome",
    EventType.INBOUND_FAILED: "an incoming message that failed, not a delivery outcome",
    EventType.UNKNOWN: "an event type notifwatch does not record",
}
# A provider code that means the receiving side refused the message for good: bounced or failed
# by what its reason means (AnymailAdapter.refusal).
REFUSED = "refused"
# Rejections because the recipient is on a suppression list: deliberately not attempted.
SUPPRESSION_REJECTS = {RejectReason.BOUNCED, RejectReason.UNSUBSCRIBED, RejectReason.SPAM}

REF_KEYS = ("order_id", "ticket_id", "invoice_id")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PURPOSE_KEYS = ("template", "purpose", "notification_type")

# Errors anymail's parsers raise on a body that is not what the provider sends (a configuration
# error is its way of saying "this is an inbound message, not a tracking event").
ANYMAIL_ERRORS = (AnymailError, AnymailConfigurationError)
UNREADABLE = (*ANYMAIL_ERRORS, ValueError, KeyError, TypeError, AttributeError, IndexError)


class BasicAuthChallenge(Rejected):
    """Missing or wrong basic auth: a 401 that names the scheme, so senders that only send
    credentials when challenged (Amazon SNS) retry with them."""

    www_authenticate = 'Basic realm="notifwatch webhook"'

    def __init__(self, reason: str = "missing or wrong basic-auth credentials"):
        super().__init__(reason, status=401)


class AnymailAdapter:
    """One email provider: anymail's tracking view plus what its normalisation leaves out."""

    kind = ""
    provider = ""  # lower-case name the reason catalog knows
    name = ""
    view_class: type = object
    # The anymail setting that holds the signature secret, when the provider signs its calls.
    signing_setting: str | None = None
    # The view cannot be built without that secret (anymail has no default for it).
    signing_required = False
    # Fields that change when the provider re-posts the same event.
    volatile_fields: frozenset[str] = frozenset()
    # The reason shown for a call anymail's validators refuse.
    refused_as = "signature mismatch"
    # Whether the reason catalogue holds this provider's own codes. When it does, a refusal the
    # catalogue cannot explain is "unknown", so failed (README "Bounced or failed"). For the other
    # providers the catalogue reads only mail-server codes out of their text; when it finds none,
    # the provider's own word (a bounce) stands rather than its explanation being called unknown.
    catalogued = False
    setup = SetupHelp(events="", secret="")

    # --- authentication (live request) ---

    def authenticate(self, source: Source, request: HttpRequest) -> None:
        if not source.credential_hash and not source.signing_key:
            raise Rejected(
                f"no secret is set for this source (add_source {source.slug} --kind "
                f"{self.kind} --secret ...)",
                status=403,
            )
        if source.credential_hash and not matches(
            get_request_basic_auth(request) or "", source.credential_hash
        ):
            raise BasicAuthChallenge()
        if source.signing_key and self.signing_setting:
            try:
                view = self.view(source, signing_key=source.signing_key)
            except (*ANYMAIL_ERRORS, ValueError) as problem:
                # Our configuration, not their call: 503 so the provider retries once it is fixed.
                raise Rejected(
                    f"the signing key of this source cannot be used: {problem}", status=503
                ) from problem
            self.check(view, request, basic_auth_ok=False)
        elif not self.signing_required:
            # Validators that need no secret (SNS headers) still run.
            self.check(self.view(source), request, basic_auth_ok=bool(source.credential_hash))

    def check(self, view, request: HttpRequest, *, basic_auth_ok: bool) -> None:
        try:
            view.run_validators(request)
        except AnymailWebhookValidationFailure as failure:
            logger.info("%s webhook refused: %s", self.name, failure)
            raise Rejected(self.refused_as, status=403) from failure
        except UNREADABLE as problem:
            if basic_auth_ok:
                return  # authenticated, but unreadable: parse() quarantines it
            raise Rejected(f"signature could not be checked: {problem}", status=403) from problem

    def keeps_signing_key(self, secret: str) -> bool:
        """Whether add_source should keep this secret itself, as the provider's signing key,
        rather than its hash: a "user:password" pair is basic auth, anything else a key."""
        return bool(self.signing_setting) and ":" not in secret

    def view(self, source: Source, *, signing_key: str | None = None):
        """Anymail's view for this source; without a signing key it can parse, not validate."""
        kwargs: dict[str, Any] = {"webhook_secret": []}  # basic auth is checked against the hash
        if self.signing_setting:
            if signing_key is None and self.signing_required:
                signing_key = NOT_USED_FOR_PARSING
            kwargs[self.signing_setting] = signing_key
        kwargs.update(self.view_options(source))
        # "Insecure webhook" and "SendGrid not supported" warnings say nothing about our setup.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnymailWarning)
            return self.view_class(**kwargs)

    def view_options(self, source: Source) -> dict:
        return {}

    def reply(self, source: Source, raw: RawEvent) -> HttpResponse | None:
        return None

    # --- interpretation (stored raw event) ---

    def parse(self, source: Source, raw: RawEvent) -> Parsed:
        result = Parsed()
        request = stored_request(raw)
        try:
            events = self.read_events(self.view(source), request, result)
        except UNREADABLE as problem:
            message = str(problem) if isinstance(problem, ANYMAIL_ERRORS) else repr(problem)
            result.problems.append(
                {
                    "index": 0,
                    "field": None,
                    "message": f"not a {self.name} tracking webhook body ({message[:300]})",
                }
            )
            return result
        if not events and not result.ignored:
            result.ignored.append(f"{self.name} call with no events (a test or ping)")
        for index, event in enumerate(events):
            try:
                status = self.status(event)
                if status is None:
                    result.ignored.append(self.ignored_reason(event))
                    continue
                result.records.append(self.record(event, status, raw))
            except UNREADABLE as problem:
                result.problems.append(
                    {"index": index, "field": None, "message": f"unreadable event: {problem!r}"}
                )
        return result

    def read_events(self, view, request: HttpRequest, result: Parsed) -> list:
        return view.parse_events(request)

    def record(self, event: AnymailTrackingEvent, status: str, raw: RawEvent) -> ProviderRecord:
        metadata = self.metadata(event)
        notif_id = scalar(metadata.get("notif_id"))
        tags = [scalar(t) for t in as_list(event.tags) if scalar(t)]
        purpose = next((scalar(metadata[k]) for k in PURPOSE_KEYS if scalar(metadata.get(k))), "")
        values = {
            "event_id": self.event_id(event),
            "occurred_at": self.occurred_at(event, raw),
            # Our own notification id, when the sender put it in the metadata, names the send
            # record directly; otherwise the provider message id (+ recipient) finds it.
            "notification_key": f"{notif_id}:email" if notif_id and self.keyed(event) else "",
            "status": status,
            "channel": "email",
            "provider": self.provider,
            "provider_message_id": self.message_id(event),
            "recipient": event.recipient or "",
            "customer_id": scalar(metadata.get("customer_id")),
            "purpose": purpose or (tags[-1] if tags else ""),
            "refs": {k: scalar(metadata[k]) for k in REF_KEYS if scalar(metadata.get(k))},
            "error_code": self.error_code(event, status),
            "error_message": (self.error_message(event) or "")[:MAX_TEXT],
            "attempt": self.attempt(event),
        }
        return ProviderRecord(values=values, raw=jsonable(event.esp_event))

    def status(self, event: AnymailTrackingEvent) -> str | None:
        """Our event type, or None when the event is not a delivery outcome."""
        if event.event_type == EventType.REJECTED:
            return "suppressed" if event.reject_reason in SUPPRESSION_REJECTS else "failed"
        if event.event_type == EventType.BOUNCED:
            return self.refusal(event)
        return STATUS_BY_EVENT_TYPE.get(event.event_type)

    def refusal(self, event: AnymailTrackingEvent) -> str:
        """Bounced or failed, for a message the receiving side refused for good: decided by the
        reason recorded with it (the same code and text), not by the provider's word for it."""
        reason = self.reason(event)
        if reason is not None and not reason.known and not self.catalogued:
            return "bounced"
        return refusal_status(reason)

    def reason(self, event: AnymailTrackingEvent) -> Reason | None:
        """The reason recording will give this event (deliveries/recording.py reads the same)."""
        return classify_reason(
            self.provider, self.error_code(event, "bounced"), self.error_message(event)
        )

    def ignored_reason(self, event: AnymailTrackingEvent) -> str:
        what = NOT_OUTCOMES.get(event.event_type, "not a delivery outcome")
        return f"{self.name} {self.esp_type(event)!r} event: {what}"

    def esp_type(self, event: AnymailTrackingEvent) -> str:
        esp = event.esp_event if isinstance(event.esp_event, dict) else {}
        return str(esp.get("event") or esp.get("type") or event.event_type)

    def metadata(self, event: AnymailTrackingEvent) -> dict:
        metadata = dict(event.metadata or {}) if isinstance(event.metadata, dict) else {}
        if isinstance(event.tags, dict):  # some providers tag with name: value pairs
            metadata = {**event.tags, **metadata}
        return metadata

    def keyed(self, event: AnymailTrackingEvent) -> bool:
        """Whether the metadata's notif_id names this recipient's notification."""
        return True

    def event_id(self, event: AnymailTrackingEvent) -> str:
        if event.event_id:
            return str(event.event_id)
        return self.content_id(event)

    def content_id(self, event: AnymailTrackingEvent) -> str:
        """Same event content, same id, for providers whose calls carry no stable event id."""
        esp = jsonable(event.esp_event)
        if isinstance(esp, dict):
            esp = {k: v for k, v in esp.items() if k not in self.volatile_fields}
        content = json.dumps(
            [esp, event.recipient], sort_keys=True, separators=(",", ":"), default=str
        )
        return f"{self.provider}:{hashlib.sha256(content.encode()).hexdigest()[:40]}"

    def message_id(self, event: AnymailTrackingEvent) -> str:
        return str(event.message_id or "")

    def occurred_at(self, event: AnymailTrackingEvent, raw: RawEvent) -> str:
        return (event.timestamp or raw.received_at).isoformat()

    def attempt(self, event: AnymailTrackingEvent) -> int | None:
        return None

    def error_code(self, event: AnymailTrackingEvent, status: str) -> str:
        return ""

    def error_message(self, event: AnymailTrackingEvent) -> str:
        return event.mta_response or event.description or ""


# --- SendGrid ---


class SendGridAdapter(AnymailAdapter):
    kind = provider = "sendgrid"
    name = "SendGrid"
    view_class = SendGridTrackingWebhookView
    signing_setting = "tracking_webhook_verification_key"
    catalogued = True
    # SendGrid gives an event a new sg_event_id when it re-posts a batch.
    volatile_fields = frozenset({"sg_event_id"})
    # Drops because the address is on one of SendGrid's suppression lists.
    suppression_drops = {"bounced address", "unsubscribed address", "spam reporting address"}
    setup = SetupHelp(
        events=(
            "Settings > Mail Settings > Event Webhooks > Create new webhook (or edit the "
            "existing one): Post URL `https://USER:PASSWORD@<host>/hooks/<slug>/` (the URL "
            "above, with the user:password you chose written in front of the host). Select "
            "Processed, Dropped, Deferred, Bounced, Delivered and Spam Reports; Opened and "
            "Clicked are optional. Unsubscribe and group unsubscribe events are accepted and "
            "ignored (they are opt-outs, not delivery outcomes). Send customer_id, order_id, "
            "ticket_id, invoice_id, template and notif_id as custom_args on each message."
        ),
        secret=(
            "`add_source SLUG --kind sendgrid --secret USER:PASSWORD`, the same pair as in the "
            "URL (only a hash is kept). If you also enable Signed Event Webhook, a source whose "
            "secret is the verification key checks SendGrid's signature instead."
        ),
        notes=(
            "SendGrid can change an event's sg_event_id when it re-posts a batch, so repeats "
            "are recognised by their content. The provider message id is the X-Message-Id "
            "SendGrid returned on send (the part of sg_message_id before the first dot): log it "
            "in your send records to join callbacks to customers."
        ),
    )

    def status(self, event):
        esp = event.esp_event
        if esp.get("event") == "dropped":
            # Not attempted: suppressed for an address on a suppression list, else failed.
            reason = str(esp.get("reason") or esp.get("type") or "").lower()
            return "suppressed" if reason in self.suppression_drops else "failed"
        if esp.get("event") == "bounce":
            # Type "bounce" (refused for this recipient) and "blocked" (refused for the message)
            # are both final: SendGrid retries only deferrals. Bounced or failed by the reason.
            return self.refusal(event)
        return super().status(event)

    def message_id(self, event):
        esp = event.esp_event
        if esp.get("anymail_id"):
            return str(esp["anymail_id"])
        if esp.get("sg_message_id"):
            return str(esp["sg_message_id"]).split(".", 1)[0]
        return str(esp.get("smtp-id") or "").strip("<>").split("@", 1)[0]

    def event_id(self, event):
        return self.content_id(event)

    def attempt(self, event):
        return event.esp_event.get("attempt")

    def error_code(self, event, status):
        esp = event.esp_event
        kind = esp.get("event")
        if kind == "bounce":
            # The enhanced status code, else SendGrid's own bounce classification, else a code in
            # the reply; with none, its bounce type ("bounce": the recipient, "blocked": the
            # message) says the least.
            code = best_code(self.provider, esp.get("status"), esp.get("bounce_classification"))
            word = str(esp.get("type") or "bounce")
            return code or code_in_text_or(self.provider, self.error_message(event), word)
        if kind == "deferred":
            return code_in_text_or(self.provider, self.error_message(event), "deferred")
        if kind == "dropped":
            return str(esp.get("reason") or esp.get("type") or "")
        if kind == "spamreport":
            return "spamreport"
        return ""

    def error_message(self, event):
        esp = event.esp_event
        return str(esp.get("response") or esp.get("reason") or "")


# --- Postmark ---


class PostmarkAdapter(AnymailAdapter):
    kind = provider = "postmark"
    name = "Postmark"
    view_class = PostmarkTrackingWebhookView
    catalogued = True
    # Every bounce TypeCode Postmark documents (postmarkapp.com/developer/api/bounce-api), by what
    # it means for this message. REFUSED: the receiving side refused it and Postmark stopped
    # trying, so bounced or failed by its reason. None: a reply or probe that says nothing about
    # the delivery (an auto-reply or a change of address means the message arrived).
    status_by_type_code: dict[int, str | None] = {
        1: REFUSED,  # HardBounce: unknown user, mailbox not found
        2: "deferred",  # Transient: "message delayed", Postmark is still trying
        16: None,  # Unsubscribe: a reply asking to be removed (it arrived; an opt-out)
        32: None,  # Subscribe: a reply asking to be added
        64: None,  # AutoResponder: out-of-office and other automatic replies (it arrived)
        128: None,  # AddressChange: a reply naming a new address (it arrived)
        256: REFUSED,  # DnsError: the domain could not be looked up; Postmark gave up
        512: REFUSED,  # SpamNotification: the receiving filter refused it as spam
        1024: None,  # OpenRelayTest: a probe of the mail server, not about our message
        2048: REFUSED,  # Unknown: a bounce Postmark could not classify (the text may)
        4096: REFUSED,  # SoftBounce: mailbox full or disabled; Postmark stopped trying
        8192: REFUSED,  # VirusNotification: refused for carrying a virus
        16384: None,  # ChallengeVerification: a challenge asking us to prove we sent it
        100000: "failed",  # BadEmailAddress: not a valid address, never attempted
        100001: "complained",  # SpamComplaint
        100002: "suppressed",  # ManuallyDeactivated: switched off in the account
        100003: "suppressed",  # Unconfirmed: the subscriber never confirmed
        100006: REFUSED,  # Blocked: the receiving provider blocked it (content, blocklist)
        100007: "failed",  # SMTPApiError: Postmark could not accept it from us
        100008: None,  # InboundError: about an incoming message
        100009: REFUSED,  # DMARCPolicy: refused for our domain's DMARC policy
        100010: "failed",  # TemplateRenderingFailed: never sent
    }
    setup = SetupHelp(
        events=(
            "Servers > (your server) > (your message stream) > Webhooks > Add webhook: Webhook "
            'URL = the URL above; under "Basic auth credentials" enter the user name and '
            "password you chose. Select Delivery, Bounce, Spam Complaint and Subscription "
            "Change (recorded as ignored: it changes future sends); Open and Link Click are "
            "optional. Put customer_id, order_id, ticket_id, invoice_id, template and notif_id "
            "in each message's Metadata."
        ),
        secret="`add_source SLUG --kind postmark --secret USER:PASSWORD` (only a hash is kept).",
        notes=(
            "Bounces are read by TypeCode. Transient (2) is a delay Postmark still retries "
            "(deferred). HardBounce, SoftBounce, DnsError, SpamNotification, Unknown, Blocked, "
            "VirusNotification and DMARCPolicy are refusals Postmark stopped trying on: bounced "
            "when the address or mailbox is the cause, else failed. AutoResponder, "
            "AddressChange and Unsubscribe replies mean the message arrived and are ignored."
        ),
    )

    def status(self, event):
        esp = event.esp_event
        if esp.get("RecordType") == "SubscriptionChange":
            return None
        code = esp.get("TypeCode")
        if esp.get("RecordType") == "Bounce" and code in self.status_by_type_code:
            status = self.status_by_type_code[code]
            return self.refusal(event) if status == REFUSED else status
        return super().status(event)

    def ignored_reason(self, event):
        esp = event.esp_event
        if esp.get("RecordType") == "SubscriptionChange":
            change = "suppressed" if esp.get("SuppressSending") else "reactivated"
            return (
                f"Postmark subscription change ({change}, {esp.get('SuppressionReason') or 'no reason'}): "
                "changes future sends, not a delivery outcome"
            )
        if esp.get("RecordType") == "Bounce":
            what = NOT_OUTCOMES.get(event.event_type, "not a delivery outcome")
            return f"Postmark {esp.get('Type')!r} bounce record: {what}"
        return super().ignored_reason(event)

    def esp_type(self, event):
        return str(event.esp_event.get("RecordType") or event.event_type)

    def event_id(self, event):
        esp = event.esp_event
        if esp.get("ID"):
            return f"{esp.get('RecordType', 'Bounce')}:{esp['ID']}"
        return self.content_id(event)

    def error_code(self, event, status):
        esp = event.esp_event
        code = esp.get("TypeCode")
        return str(code) if code not in (None, "") else str(esp.get("Type") or "")

    def error_message(self, event):
        esp = event.esp_event
        return str(esp.get("Details") or esp.get("Description") or "")


# --- Mailgun ---


class MailgunAdapter(AnymailAdapter):
    kind = provider = "mailgun"
    name = "Mailgun"
    view_class = MailgunTrackingWebhookView
    signing_setting = "webhook_signing_key"
    signing_required = True
    catalogued = True
    # Reasons too general to explain a failure better than its SMTP code. "old" (Mailgun gave up
    # retrying) says why it stopped, the last reply says why it failed.
    vague_reasons = {"generic", "bounce", "old"}
    setup = SetupHelp(
        events=(
            "Sending > Webhooks > (your domain) > Add webhook, once per event type, each with "
            "the URL above: Delivered, Permanent failure, Temporary failure and Spam complaints; "
            "Opened and Clicked are optional, Unsubscribed is accepted and ignored. Send "
            "customer_id, order_id, ticket_id, invoice_id, template and notif_id as user "
            "variables (X-Mailgun-Variables or v: parameters)."
        ),
        secret=(
            "Mailgun signs every call with your HTTP webhook signing key (Sending > Webhooks, "
            '"HTTP webhook signing key"): `add_source SLUG --kind mailgun --secret <signing key>`.'
        ),
        notes=(
            "Temporary failures (severity temporary) are shown as deferred: Mailgun keeps "
            'retrying. Permanent failures, and "old" ones Mailgun stopped retrying, are '
            "bounced when the last reply blames the address or mailbox, else failed. Failures "
            "because of a suppression list (suppress-bounce, suppress-unsubscribe, "
            "suppress-complaint) are shown as suppressed."
        ),
    )

    def authenticate(self, source: Source, request: HttpRequest) -> None:
        super().authenticate(source, request)  # anymail checks the signature
        if source.signing_key:
            # The signature covers only the timestamp and token, not the events: a captured
            # call must not be usable again, later or a second time.
            token, timestamp = mailgun_signature_fields(request)
            signed_at = fresh_signature_time(timestamp)
            claim_token(source, token, signed_at)

    def status(self, event):
        data = event_data(event)
        if data.get("event") == "failed":
            if data.get("severity") == "temporary":
                return "deferred"  # Mailgun keeps retrying (greylisted, generic, espblock, ...)
            reason = str(data.get("reason") or "")
            if reason.startswith("suppress-") or reason == "hardfail":
                return "suppressed"  # not attempted: the address is on a suppression list
            # Permanent: refused for good, or "old" (Mailgun gave up retrying). Bounced or failed
            # by what the last reply means, whatever Mailgun's own reason word.
            return self.refusal(event)
        return super().status(event)

    def esp_type(self, event):
        if is_legacy(event):
            return str(event.esp_event.get("event") or event.event_type)
        return str(event_data(event).get("event") or event.event_type)

    def event_id(self, event):
        data = event_data(event)
        # event-data.id is unique only within a day: with the time it is unique for good.
        if data.get("id"):
            return f"{data['id']}:{data.get('timestamp')}"
        return super().event_id(event)

    def attempt(self, event):
        return delivery_status(event).get("attempt-no")

    def error_code(self, event, status):
        if is_legacy(event):
            return best_code(
                self.provider, event.esp_event.get("code"), event.esp_event.get("reason")
            )
        data = event_data(event)
        delivery = delivery_status(event)
        reason = str(data.get("reason") or "")
        candidates = [delivery.get("enhanced-code")]
        if reason not in self.vague_reasons:
            candidates.append(reason)
        # The reply's code: an SMTP code, or Mailgun's own (498: no mail server for the domain;
        # 605-607: the suppression lists). 0 is Mailgun's "no code".
        if delivery.get("code") not in (0, "0"):
            candidates.append(delivery.get("code"))
        candidates.append(reason)
        if data.get("event") in ("complained", "rejected"):
            candidates.append(data["event"])
        return best_code(self.provider, *candidates)

    def error_message(self, event):
        delivery = delivery_status(event)
        return str(
            delivery.get("message")
            or delivery.get("description")
            or event.description
            or event.mta_response
            or ""
        )


def mailgun_signature_fields(request: HttpRequest) -> tuple[str, Any]:
    """The token and timestamp Mailgun signed, read as anymail's validator read them."""
    if request.content_type == "application/json":
        signature = json.loads(request.body.decode("utf-8"))["signature"]
        return str(signature["token"]), signature["timestamp"]
    # Legacy form posts: the last value, as anymail uses (user variables may repeat the names).
    return str(request.POST["token"]), request.POST["timestamp"]


def fresh_signature_time(timestamp: Any) -> datetime:
    """When the call was signed, if that is within the accepted window of now; else refused."""
    window = settings.NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS
    try:
        stamp = float(timestamp)
    except (TypeError, ValueError):
        stamp = math.nan
    age = timezone.now().timestamp() - stamp
    if not abs(age) <= window:  # also refuses NaN and infinities
        when = "old" if age > 0 else "ahead of this server's clock"
        detail = f"{abs(age):.0f} s {when}" if math.isfinite(age) else "not a time"
        raise Rejected(
            f"signature timestamp is {detail}; calls signed more than {window} s from now are "
            "refused (a replayed or long-delayed call, or a wrong clock on this server)",
            status=403,
        )
    return datetime.fromtimestamp(stamp, UTC)


def claim_token(source: Source, token: str, signed_at: datetime) -> None:
    """Accept a signature's token once per source; the unique constraint decides races."""
    token_hash = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        with transaction.atomic():
            UsedWebhookToken.objects.create(
                source=source, token_hash=token_hash, signed_at=signed_at
            )
    except IntegrityError as replay:
        # 406: Mailgun does not retry it. The token was accepted before, so this is a replay
        # (or a retry of a call already answered).
        raise Rejected("signature already used (a replayed call)", status=406) from replay


def is_legacy(event: AnymailTrackingEvent) -> bool:
    """Mailgun's pre-2018 webhooks post form fields (a QueryDict), not a JSON event."""
    return isinstance(event.esp_event, MultiValueDict)


def event_data(event: AnymailTrackingEvent) -> dict:
    if is_legacy(event) or not isinstance(event.esp_event, dict):
        return {}
    return event.esp_event.get("event-data") or {}


def delivery_status(event: AnymailTrackingEvent) -> dict:
    status = event_data(event).get("delivery-status")
    return status if isinstance(status, dict) else {}


# --- Amazon SES (through SNS) ---


class SESTrackingView(AmazonSESTrackingWebhookView):
    """Anymail's SES parser without its boto3 set-up: notifwatch never calls AWS APIs (a
    subscription is confirmed by opening its SubscribeURL, see SESAdapter.reply)."""

    def __init__(self, **kwargs):
        self.auto_confirm_enabled = False
        self.session_params, self.client_params = {}, {}
        super(AmazonSESBaseWebhookView, self).__init__(**kwargs)


# Where each SES event type keeps its own details (and its own timestamp).
SES_DETAIL_KEYS = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Send": "send",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "DeliveryDelay": "deliveryDelay",
    "Rendering Failure": "failure",
    "Subscription": "subscription",
}
SES_SUPPRESSED_SUBTYPES = {"Suppressed", "OnAccountSuppressionList"}
# Bounce subtypes SES could not tell apart: the recipient's delivery report may say more.
SES_VAGUE_SUBTYPES = {"General", "Undetermined"}
# Delay types as vague: the receiving server's reply says more.
SES_VAGUE_DELAYS = {"General", "Undetermined"}
# Complaint feedback types that are not the customer reporting our mail (IANA MARF types):
# "not-spam" takes a spam verdict back; "auth-failure" reports our domain failing authentication.
SES_NOT_COMPLAINTS = {
    "not-spam": "a report that the message is not spam, not a complaint",
    "auth-failure": (
        "a report that our sending domain failed email authentication, not a complaint by the "
        "customer (check SPF, DKIM and DMARC)"
    ),
}
# Words of an automatic reply in a bounce's diagnostic text.
AUTO_REPLY_TEXT = re.compile(
    r"auto[-\s]?(matic\s)?(reply|replies|respon)|out[-\s]of[-\s](the[-\s])?office|vacation",
    re.IGNORECASE,
)
SES_TEST_MESSAGE = "Successfully validated SNS topic for Amazon SES event publishing."

# Only Amazon SNS hands out SNS signing certificates (and subscription links).
SNS_CERT_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]+\.pem")
SNS_SUBSCRIBE_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?[^#\s]+")
SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SNS_SIGNED_FIELDS["UnsubscribeConfirmation"] = SNS_SIGNED_FIELDS["SubscriptionConfirmation"]
SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERTIFICATE_BYTES = 64 * 1024


class SNSSignatureProblem(Exception):
    pass


def sns_string_to_sign(message: dict) -> bytes:
    """The canonical text SNS signs: "Name\\nvalue\\n" for each signed field present, in order."""
    fields = SNS_SIGNED_FIELDS.get(message.get("Type", ""))
    if fields is None:
        raise SNSSignatureProblem(f"unknown SNS message type {message.get('Type')!r}")
    return "".join(
        f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None
    ).encode()


def verify_sns_signature(message: dict) -> None:
    """Raise SNSSignatureProblem unless Amazon SNS signed this message."""
    algorithm = SNS_HASHES.get(str(message.get("SignatureVersion", "")))
    if algorithm is None:
        raise SNSSignatureProblem(
            f"unsupported SNS SignatureVersion {message.get('SignatureVersion')!r}"
        )
    try:
        signature = b64decode(message.get("Signature") or "", validate=True)
    except (Base64Error, ValueError) as exc:
        raise SNSSignatureProblem("SNS signature is not base64") from exc
    key = sns_public_key(str(message.get("SigningCertURL") or message.get("SigningCertUrl") or ""))
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise SNSSignatureProblem("signature mismatch") from exc


@lru_cache(maxsize=32)
def sns_public_key(url: str):
    """The public key of an SNS signing certificate, fetched once per URL and kept in memory."""
    if not SNS_CERT_URL.fullmatch(url):
        # Anyone can sign with a certificate of their own: only Amazon's hosts are trusted.
        raise SNSSignatureProblem(
            f"SNS signing certificate URL is not on an Amazon SNS host: {url[:120]!r}"
        )
    certificate = x509.load_pem_x509_certificate(trusted_copy(url) or fetch_certificate(url))
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SNSSignatureProblem("SNS signing certificate is expired or not yet valid")
    return certificate.public_key()


def trusted_copy(url: str) -> bytes | None:
    """The certificate from NOTIFWATCH_SNS_CERTS_DIR, for hosts that cannot reach Amazon.

    Files are named by the last path segment of the SigningCertURL (already checked to be on an
    Amazon SNS host, so the name holds no "/"). The signature is verified with it all the same:
    the folder only replaces the download.
    """
    folder = settings.NOTIFWATCH_SNS_CERTS_DIR
    if not folder:
        return None
    path = Path(folder) / url.rsplit("/", 1)[-1]
    if not path.is_file():
        return None
    with path.open("rb") as pem:
        body = pem.read(MAX_CERTIFICATE_BYTES + 1)
    if len(body) > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"SNS signing certificate {path.name} is too large")
    return body


def fetch_certificate(url: str) -> bytes:
    """Download a PEM certificate (its URL was checked to be Amazon's before this is called)."""
    response = requests.get(url, timeout=10, allow_redirects=False, stream=True)
    response.raise_for_status()
    body = response.raw.read(MAX_CERTIFICATE_BYTES + 1, decode_content=True)
    if len(body) > MAX_CERTIFICATE_BYTES:
        raise ValueError("SNS signing certificate is too large")
    return body


class SESAdapter(AnymailAdapter):
    kind = provider = "ses"
    name = "Amazon SES"
    view_class = SESTrackingView
    refused_as = "SNS message headers do not match its body"
    setup = SetupHelp(
        events=(
            "In Amazon SNS create a topic and an HTTPS subscription to "
            "`https://USER:PASSWORD@<host>/hooks/<slug>/` (the URL above with your user:password "
            "in front of the host; leave raw message delivery off). In SES, either add an SNS "
            "event destination to your configuration set with Sends, Deliveries, Bounces, "
            "Complaints, Rejects, Rendering failures and Delivery delays (Opens and Clicks are "
            "optional), or set the identity's Bounce, Complaint and Delivery notifications to "
            "the topic. Send customer_id, order_id, ticket_id, invoice_id, template and notif_id "
            "as message tags."
        ),
        secret="`add_source SLUG --kind ses --secret USER:PASSWORD` (only a hash is kept).",
        notes=(
            "SNS first asks to confirm the subscription: the raw event of that call (ignored) "
            "shows the confirmation link; open it once, or set NOTIFWATCH_SNS_AUTO_CONFIRM=true "
            "to have notifwatch open it. Every SNS message signature is verified against "
            "Amazon's signing certificate (fetched only from sns.<region>.amazonaws.com, or read "
            "from NOTIFWATCH_SNS_CERTS_DIR on a host without outbound access). SES "
            "reports a temporary (Transient) bounce only once it has stopped retrying, so every "
            "bounce is final: bounced when the address or mailbox is the cause, else failed. "
            "Delivery delays are deferrals; an out-of-office reply (a Transient/General bounce "
            "without a delivery report) is ignored, because the message arrived."
        ),
    )

    def authenticate(self, source: Source, request: HttpRequest) -> None:
        super().authenticate(source, request)  # basic auth, then anymail's SNS header checks
        try:
            message = json.loads(request.body)
        except ValueError:
            return  # authenticated, unreadable: quarantined by parse()
        if not isinstance(message, dict):
            return
        try:
            verify_sns_signature(message)
        except SNSSignatureProblem as problem:
            logger.info("SNS message refused: %s", problem)
            reason = "signature mismatch" if str(problem) == "signature mismatch" else str(problem)
            raise Rejected(reason, status=403) from problem
        except (requests.RequestException, ValueError) as problem:
            # Our download failed, not their signature: 503 so that SNS retries.
            raise Rejected(
                f"could not fetch the SNS signing certificate ({problem})", status=503
            ) from problem

    def read_events(self, view, request, result):
        message = json.loads(request.body)
        if not isinstance(message, dict):
            raise ValueError("expected an SNS message object")
        sns_type = message.get("Type")
        if sns_type not in SNS_SIGNED_FIELDS:
            raise ValueError(f"not an Amazon SNS message (Type {sns_type!r})")
        topic = message.get("TopicArn", "?")
        if sns_type == "SubscriptionConfirmation":
            confirm = " (notifwatch opens it automatically)" if auto_confirm_sns() else ""
            result.ignored.append(
                f"SNS subscription confirmation for {topic}: open {message.get('SubscribeURL')} "
                f"to confirm{confirm}"
            )
            return []
        if sns_type == "UnsubscribeConfirmation":
            result.ignored.append(f"SNS unsubscribe confirmation for {topic}")
            return []
        if sns_type == "Notification" and message.get("Message") == SES_TEST_MESSAGE:
            result.ignored.append(f"SES test notification for {topic}: the topic works")
            return []
        events = view.parse_events(request)
        sns_id = message.get("MessageId") or ""
        for event in events:
            # One SNS message, one outcome per recipient: each needs its own id.
            event.event_id = f"{sns_id}:{event.recipient}" if len(events) > 1 else sns_id
        return [e for e in events if self.concerns_recipient(e)]

    def concerns_recipient(self, event) -> bool:
        delayed = (event.esp_event.get("deliveryDelay") or {}).get("delayedRecipients")
        if ses_type(event) == "DeliveryDelay" and delayed:
            return any(r.get("emailAddress") == event.recipient for r in delayed)
        return True

    def status(self, event):
        kind = ses_type(event)
        if kind == "Bounce":
            bounce = event.esp_event.get("bounce", {})
            if bounce.get("bounceSubType") in SES_SUPPRESSED_SUBTYPES:
                return "suppressed"  # SES did not try: the address is on a suppression list
            if ses_auto_reply(event):
                return None  # an out-of-office reply: the message arrived
            # SES reports a bounce only when it is final: hard bounces, and soft (Transient)
            # ones once it stopped retrying. Bounced or failed by what it means.
            return self.refusal(event)
        if kind == "Complaint":
            complaint = event.esp_event.get("complaint", {})
            if complaint.get("complaintSubType") == "OnAccountSuppressionList":
                # Accepted but not sent: the address is on the account's suppression list
                # because the customer complained before.
                return "suppressed"
            if complaint.get("complaintFeedbackType") in SES_NOT_COMPLAINTS:
                return None
            return "complained"
        if kind == "DeliveryDelay":
            return "deferred"  # SES is still retrying until the delay's expirationTime
        if kind in ("Reject", "Rendering Failure"):
            return "failed"  # not attempted: a virus found, or the template could not be filled
        return super().status(event)

    def ignored_reason(self, event):
        kind = ses_type(event)
        if kind == "Bounce" and ses_auto_reply(event):
            return (
                "Amazon SES 'Bounce' event (Transient/General) that is an automatic reply such as "
                "an out-of-office note: the message arrived, not a delivery failure"
            )
        if kind == "Complaint":
            feedback = event.esp_event.get("complaint", {}).get("complaintFeedbackType")
            if feedback in SES_NOT_COMPLAINTS:
                return f"Amazon SES {feedback!r} feedback: {SES_NOT_COMPLAINTS[feedback]}"
        if kind == "Subscription":
            return (
                "Amazon SES 'Subscription' event: a change of the customer's subscription "
                "preferences, not a delivery outcome"
            )
        return super().ignored_reason(event)

    def esp_type(self, event):
        return ses_type(event)

    def keyed(self, event):
        return len(event.esp_event.get("mail", {}).get("destination") or []) <= 1

    def metadata(self, event):
        # SES message tags arrive as name -> [values]; SES's own tags start with "ses:".
        tags = event.esp_event.get("mail", {}).get("tags") or {}
        found = {
            name: values[0] if isinstance(values, list) and values else values
            for name, values in tags.items()
            if not name.startswith("ses:")
        }
        return {**found, **super().metadata(event)}

    def occurred_at(self, event, raw):
        details = event.esp_event.get(SES_DETAIL_KEYS.get(ses_type(event), ""), {})
        stamp = details.get("timestamp") if isinstance(details, dict) else None
        return stamp or super().occurred_at(event, raw)

    def error_code(self, event, status):
        esp = event.esp_event
        kind = ses_type(event)
        if kind == "Bounce":
            bounce = esp.get("bounce", {})
            code = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
            if bounce.get("bounceSubType") in SES_VAGUE_SUBTYPES:
                # SES could not say why; the recipient's delivery report status may.
                return best_code(self.provider, ses_recipient(event, "bounce").get("status"), code)
            return code
        if kind == "Complaint":
            complaint = esp.get("complaint", {})
            if complaint.get("complaintSubType") == "OnAccountSuppressionList":
                return "Complaint/OnAccountSuppressionList"
            return str(complaint.get("complaintFeedbackType") or "")
        if kind == "DeliveryDelay":
            delay_type = str(esp.get("deliveryDelay", {}).get("delayType") or "")
            if delay_type in SES_VAGUE_DELAYS:
                status = ses_recipient(event, "deliveryDelay").get("status")
                return best_code(self.provider, status, delay_type)
            return delay_type
        if kind == "Reject":
            return "Reject"
        if kind == "Rendering Failure":
            return "RenderingFailure"
        return ""

    def error_message(self, event):
        esp = event.esp_event
        if ses_type(event) == "DeliveryDelay":
            return str(ses_recipient(event, "deliveryDelay").get("diagnosticCode") or "")
        if ses_type(event) == "Reject":
            return str(esp.get("reject", {}).get("reason") or "")
        return super().error_message(event)

    def reply(self, source: Source, raw: RawEvent) -> HttpResponse | None:
        """Confirm an SNS subscription by opening its link, when the admin chose that."""
        if not auto_confirm_sns():
            return None
        try:
            message = json.loads(bytes(raw.body))
        except ValueError:
            return None
        if not isinstance(message, dict) or message.get("Type") != "SubscriptionConfirmation":
            return None
        url = str(message.get("SubscribeURL") or "")
        if not SNS_SUBSCRIBE_URL.fullmatch(url):
            logger.warning("SNS SubscribeURL of raw event %s is not an SNS address", raw.pk)
            return None
        try:
            requests.get(url, timeout=10, allow_redirects=False).raise_for_status()
            logger.info("confirmed SNS subscription %s", message.get("TopicArn"))
        except requests.RequestException:
            # The link stays in the raw event's reason for the admin to open by hand.
            logger.exception("could not confirm SNS subscription %s", message.get("TopicArn"))
        return None


def ses_type(event: AnymailTrackingEvent) -> str:
    esp = event.esp_event or {}
    return str(esp.get("eventType") or esp.get("notificationType") or "")


def ses_recipient(event: AnymailTrackingEvent, detail: str) -> dict:
    """This recipient's entry in a bounce's bouncedRecipients or a delay's delayedRecipients."""
    details = (event.esp_event or {}).get(detail) or {}
    listed = details.get("bouncedRecipients") or details.get("delayedRecipients") or []
    return next(
        (r for r in listed if isinstance(r, dict) and r.get("emailAddress") == event.recipient),
        {},
    )


def ses_auto_reply(event: AnymailTrackingEvent) -> bool:
    """Whether an SES bounce is an automatic reply (out of office), which means it arrived.

    SES files such replies as Transient/General bounces (its notification contents). A real
    soft bounce it gave up on carries a delivery report (action, status); a reply the recipient's
    mailbox sent back has none, or says what it is in its diagnostic text.
    """
    bounce = (event.esp_event or {}).get("bounce") or {}
    if (bounce.get("bounceType"), bounce.get("bounceSubType")) != ("Transient", "General"):
        return False
    recipient = ses_recipient(event, "bounce")
    text = str(recipient.get("diagnosticCode") or "")
    if AUTO_REPLY_TEXT.search(text):
        return True
    return not (recipient.get("status") or recipient.get("action") or text)


def auto_confirm_sns() -> bool:
    return bool(getattr(settings, "NOTIFWATCH_SNS_AUTO_CONFIRM", False))


# --- The other providers anymail tracks ---


class BrevoAdapter(AnymailAdapter):
    kind = provider = "brevo"
    name = "Brevo"
    view_class = BrevoTrackingWebhookView
    setup = SetupHelp(
        events=(
            "Transactional > Settings > Webhook > Add a new webhook: URL "
            "`https://USER:PASSWORD@<host>/hooks/<slug>/`; tick Sent, Delivered, Deferred, Soft "
            "bounce, Hard bounce, Blocked, Invalid email, Error and Complaint (Opened and "
            "Clicked are optional). Put customer_id, order_id, template and notif_id in the "
            "X-Mailin-custom header as JSON."
        ),
        secret="`add_source SLUG --kind brevo --secret USER:PASSWORD` (only a hash is kept).",
        notes="Brevo sends no event id: repeated calls are recognised by their content.",
    )

    def status(self, event):
        if event.esp_event.get("event") == "blocked":
            return "suppressed"  # Brevo blocks addresses on its blocklist (opt-out, bounce)
        return super().status(event)

    def error_code(self, event, status):
        return str(event.esp_event.get("event") or "") if status != "delivered" else ""


class MailerSendAdapter(AnymailAdapter):
    kind = provider = "mailersend"
    name = "MailerSend"
    view_class = MailerSendTrackingWebhookView
    signing_setting = "signing_secret"
    signing_required = True
    setup = SetupHelp(
        events=(
            "Domains > (your domain) > Webhooks > Add webhook: Endpoint URL = the URL above; "
            "events activity.sent, activity.delivered, activity.soft_bounced, "
            "activity.hard_bounced and activity.spam_complaint (opened and clicked optional)."
        ),
        secret=(
            "The webhook's signing secret: `add_source SLUG --kind mailersend --secret "
            "<signing secret>`; or USER:PASSWORD written into the URL "
            "(`https://USER:PASSWORD@<host>/...`) and given as the secret."
        ),
    )

    def esp_type(self, event):
        return str(event.esp_event.get("data", {}).get("type") or event.event_type)

    def error_code(self, event, status):
        morph = event.esp_event.get("data", {}).get("morph") or {}
        return str(morph.get("reason") or "") if isinstance(morph, dict) else ""


class MailjetAdapter(AnymailAdapter):
    kind = provider = "mailjet"
    name = "Mailjet"
    view_class = MailjetTrackingWebhookView
    # Blocked because of the recipient's earlier bounce, opt-out or complaint.
    suppression_errors = {"preblocked", "blacklisted", "spam reporter"}
    setup = SetupHelp(
        events=(
            "Account settings > Event notifications (webhooks): paste "
            "`https://USER:PASSWORD@<host>/hooks/<slug>/` for Sent, Bounce, Blocked and Spam "
            "(Open and Click optional). Put customer_id, order_id, template and notif_id in "
            "the message's EventPayload as JSON."
        ),
        secret="`add_source SLUG --kind mailjet --secret USER:PASSWORD` (only a hash is kept).",
        notes="Mailjet's \"sent\" means the recipient's server accepted it: shown as delivered.",
    )

    def status(self, event):
        if event.esp_event.get("event") == "blocked":
            error = str(event.esp_event.get("error") or "")
            return "suppressed" if error in self.suppression_errors else "failed"
        return super().status(event)

    def error_code(self, event, status):
        return str(event.esp_event.get("error") or "")


class MailtrapAdapter(AnymailAdapter):
    kind = provider = "mailtrap"
    name = "Mailtrap"
    view_class = MailtrapTrackingWebhookView
    signing_setting = "tracking_secret"
    setup = SetupHelp(
        events=(
            "Sending Domains > (your domain) > Webhooks > Create: URL = the URL above; events "
            "Delivery, Bounce, Soft Bounce, Suspension, Reject and Spam complaint (Open and "
            "Click optional). Put customer_id, order_id, template and notif_id in "
            "custom_variables."
        ),
        secret=(
            "The webhook's signing secret (`--secret <signing secret>`), or USER:PASSWORD "
            "written into the URL and given as the secret."
        ),
        notes="Mailtrap's reject means the address is on a suppression list: shown as suppressed.",
    )

    def status(self, event):
        if event.esp_event.get("event") == "reject":
            return "suppressed"
        return super().status(event)

    def error_code(self, event, status):
        esp = event.esp_event
        return best_code(
            self.provider, esp.get("bounce_category"), esp.get("response_code"), esp.get("reason")
        )


class MandrillAdapter(AnymailAdapter):
    kind = provider = "mandrill"
    name = "Mandrill"
    view_class = MandrillCombinedWebhookView
    signing_setting = "webhook_key"
    signing_required = True
    setup = SetupHelp(
        events=(
            "Settings > Webhooks > Add a webhook: Post to URL = the URL above exactly (Mandrill "
            "signs it); trigger on Message Is Sent, Message Is Delayed, Message Is Bounced, "
            "Message Is Soft-Bounced, Message Is Rejected and Message Is Marked As Spam (Opened "
            "and Clicked optional). Put customer_id, order_id, template and notif_id in the "
            "message metadata."
        ),
        secret=(
            "The webhook's key shown after saving it: `add_source SLUG --kind mandrill "
            "--secret <webhook key>`."
        ),
        notes=(
            "Mandrill checks the URL with a HEAD request when you save it. NOTIFWATCH_BASE_URL "
            "must be the public address Mandrill calls: the signature covers the URL."
        ),
    )

    def view_options(self, source):
        return {"webhook_url": public_webhook_url(source)}  # what Mandrill signed

    def status(self, event):
        if self.esp_type(event) == "reject":
            return "suppressed"  # Mandrill rejects addresses on its rejection denylist
        return super().status(event)

    def esp_type(self, event):
        return str(event.esp_event.get("event") or event.esp_event.get("type") or "")

    def error_code(self, event, status):
        msg = event.esp_event.get("msg") or {}
        return best_code(self.provider, msg.get("bounce_description"), self.esp_type(event))


class PostalAdapter(AnymailAdapter):
    kind = provider = "postal"
    name = "Postal"
    view_class = PostalTrackingWebhookView
    signing_setting = "webhook_key"
    signing_required = True
    setup = SetupHelp(
        events=(
            "(your server) > Webhooks > Add webhook: URL = the URL above; events MessageSent, "
            "MessageDelayed, MessageDeliveryFailed, MessageHeld and MessageBounced "
            "(MessageLinkClicked optional)."
        ),
        secret=(
            "Postal's webhook signing public key (the base64 text between the BEGIN/END "
            "PUBLIC KEY lines): `add_source SLUG --kind postal --secret <public key>`."
        ),
    )

    def status(self, event):
        if event.esp_event.get("payload", {}).get("status") == "HardFail":
            return "bounced"  # the receiving server refused it for good
        return super().status(event)

    def esp_type(self, event):
        return str(event.esp_event.get("event") or event.event_type)

    def error_code(self, event, status):
        return str(event.esp_event.get("payload", {}).get("status") or "")


class ResendAdapter(AnymailAdapter):
    kind = provider = "resend"
    name = "Resend"
    view_class = ResendTrackingWebhookView
    signing_setting = "signing_secret"
    # Event types newer than anymail's table.
    status_by_type = {
        "email.failed": "failed",
        "email.suppressed": "suppressed",
        "email.scheduled": "queued",
    }
    setup = SetupHelp(
        events=(
            "Webhooks > Add Endpoint: URL `https://USER:PASSWORD@<host>/hooks/<slug>/`; events "
            "email.sent, email.delivered, email.delivery_delayed, email.bounced, "
            "email.complained and email.failed (opened and clicked optional). Put customer_id, "
            "order_id, template and notif_id in an X-Metadata header as JSON."
        ),
        secret=(
            "USER:PASSWORD as written in the URL (`--secret USER:PASSWORD`). Checking Resend's "
            "own signature (whsec_ secret) needs the svix package installed."
        ),
    )

    def status(self, event):
        kind = event.esp_event.get("type")
        if kind in self.status_by_type:
            return self.status_by_type[kind]
        bounce = event.esp_event.get("data", {}).get("bounce") or {}
        if kind == "email.bounced" and bounce.get("subType") in SES_SUPPRESSED_SUBTYPES:
            return "suppressed"
        return super().status(event)

    def error_code(self, event, status):
        bounce = event.esp_event.get("data", {}).get("bounce") or {}
        if bounce.get("type"):
            return f"{bounce.get('type')}/{bounce.get('subType')}"
        return ""


class SparkPostAdapter(AnymailAdapter):
    kind = provider = "sparkpost"
    name = "SparkPost"
    view_class = SparkPostTrackingWebhookView
    setup = SetupHelp(
        events=(
            "Configuration > Webhooks > New webhook: Target URL = the URL above, "
            "Authentication: Basic Auth with your user name and password; events Injection, "
            "Delivery, Bounce, Out of band, Delay, Policy rejection, Spam complaint, Generation "
            "failure and Generation rejection (Open and Click optional). Put customer_id, "
            "order_id, template and notif_id in the recipient or transmission metadata."
        ),
        secret="`add_source SLUG --kind sparkpost --secret USER:PASSWORD` (only a hash is kept).",
    )

    def esp_type(self, event):
        inner = next(iter((event.esp_event.get("msys") or {}).values()), {})
        return str(inner.get("type") or event.event_type)

    def error_code(self, event, status):
        inner = next(iter((event.esp_event.get("msys") or {}).values()), {})
        return str(inner.get("bounce_class") or inner.get("error_code") or "")


class UnisenderGoAdapter(AnymailAdapter):
    kind = provider = "unisender_go"
    name = "Unisender Go"
    view_class = UnisenderGoTrackingWebhookView
    signing_setting = "api_key"
    signing_required = True
    suppression_statuses = {"err_unsubscribed", "err_blacklisted"}
    setup = SetupHelp(
        events=(
            "Set the webhook (account settings or the webhook/set API) to the URL above with "
            "event transactional_email_status and statuses sent, delivered, soft_bounced, "
            "hard_bounced and spam (opened and clicked optional). Put customer_id, order_id, "
            "template and notif_id in the message metadata."
        ),
        secret=(
            "Unisender Go signs calls with the API key of the user or project the webhook "
            "belongs to: `add_source SLUG --kind unisender_go --secret <API key>`."
        ),
        notes="Unisender Go checks the URL with a GET request when the webhook is set.",
    )

    def status(self, event):
        delivery = event.esp_event.get("delivery_info") or {}
        if delivery.get("delivery_status") in self.suppression_statuses:
            return "suppressed"
        return super().status(event)

    def esp_type(self, event):
        return str(event.esp_event.get("status") or event.event_type)

    def error_code(self, event, status):
        delivery = event.esp_event.get("delivery_info") or {}
        return str(delivery.get("delivery_status") or "")


# --- helpers ---


def stored_request(raw: RawEvent) -> HttpRequest:
    """The provider's request rebuilt from the raw event, with its form fields readable.

    A bare HttpRequest's POST is a fixed empty QueryDict (WSGIRequest parses it lazily), and
    anymail reads form-posted webhooks (Mandrill, legacy Mailgun) from request.POST."""
    request = request_from_raw(raw)
    if request.content_type in FORM_TYPES:
        # Read the body first: the multipart parser would otherwise consume the stream and
        # leave a parser that reads request.body with RawPostDataException.
        request.body  # noqa: B018
        request._load_post_and_files()  # type: ignore[attr-defined]
        request.POST, request.FILES = request._post, request._files  # type: ignore[attr-defined]
    return request


def code_in_text_or(provider: str, message: str, word: str) -> str:
    """No code ("") when the provider's text holds a code the catalogue knows, so that recording
    reads it from there; else the provider's own word for what happened."""
    reason = classify_reason(provider, None, message)
    return "" if reason is not None and reason.known else word


def best_code(provider: str, *candidates) -> str:
    """The first candidate code the reason catalog can explain, else the first one given."""
    present = [str(c).strip() for c in candidates if c not in (None, "") and str(c).strip()]
    for code in present:
        reason = classify_reason(provider, code)
        if reason is not None and reason.known and reason.category != "unknown":
            return code
    return present[0] if present else ""


def scalar(value) -> str:
    """Metadata values as text; objects and lists are not ids."""
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value).strip()


def as_list(value) -> list:
    if value is None or isinstance(value, dict):
        return []
    return [value] if isinstance(value, str) else list(value)


def jsonable(value) -> Any:
    """The provider's event as plain JSON (legacy form posts arrive as a QueryDict)."""
    if isinstance(value, MultiValueDict):
        value = {k: v[0] if len(v) == 1 else v for k, v in value.lists()}
    return json.loads(json.dumps(value, default=str))


ADAPTER_CLASSES = (
    SendGridAdapter,
    PostmarkAdapter,
    MailgunAdapter,
    SESAdapter,
    BrevoAdapter,
    MailerSendAdapter,
    MailjetAdapter,
    MailtrapAdapter,
    MandrillAdapter,
    PostalAdapter,
    ResendAdapter,
    SparkPostAdapter,
    UnisenderGoAdapter,
)
for adapter_class in ADAPTER_CLASSES:
    register(adapter_class())
