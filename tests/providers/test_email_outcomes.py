"""Which status each email provider's codes and event types give, from what they mean.

One rule for every adapter (README "Bounced or failed"): a message the receiving side refused
for good is bounced when its reason is the customer's address or mailbox, else failed; a
refusal nobody can explain is failed; a provider that did not try is suppressed (a suppression
list) or failed; a delay the provider still retries is deferred; an automatic reply means the
message arrived and is no outcome at all. The reason is the one recording gives the event: the
same provider, code and text, read by the reason catalogue.
"""

import json

import pytest

from notifwatch.failures.reasons import classify_reason
from tests.providers.test_email_adapters import (
    MAILGUN_KEY,
    SNS_TEXT,
    fixture_json,
    make_source,
    only,
    parse,
    ses_message,
)

pytestmark = pytest.mark.django_db


def source_of(kind: str):
    """The test source of this kind, made once per test (several parses share it)."""
    from notifwatch.ingest.models import Source

    existing = Source.objects.filter(kind=kind).first()
    if existing is not None:
        return existing
    if kind == "mailgun":
        return make_source(kind, basic=None, signing_key=MAILGUN_KEY)
    return make_source(kind)


def reason_of(values: dict):
    """The reason recording gives the record (deliveries/recording.py reads the same fields)."""
    return classify_reason(values["provider"], values["error_code"], values["error_message"])


def outcome(values: dict) -> tuple[str, str]:
    return values["status"], reason_of(values).category


# --- SendGrid: bounce (type bounce or blocked) is final; dropped was never attempted ---


def sendgrid_bounce(**fields) -> list[dict]:
    event = fixture_json("sendgrid", "02_bounce_hard_invalid_address.json")[1]
    for name in ("status", "bounce_classification", "reason", "type"):
        event.pop(name)
    return [{**event, **fields}]


@pytest.mark.parametrize(
    ("fields", "status", "code", "category"),
    [
        (
            {"type": "bounce", "status": "5.1.1", "bounce_classification": "Invalid Address"},
            "bounced",
            "5.1.1",
            "invalid_address",
        ),
        (
            {"type": "blocked", "status": "5.7.1", "bounce_classification": "Reputation"},
            "failed",
            "5.7.1",
            "blocked_spam",
        ),
        # A generic status: SendGrid's own classification says what happened.
        (
            {"type": "bounce", "status": "5.0.0", "bounce_classification": "Reputation"},
            "failed",
            "Reputation",
            "blocked_spam",
        ),
        (
            {"type": "bounce", "status": "5.0.0", "bounce_classification": "Mailbox Unavailable"},
            "bounced",
            "Mailbox Unavailable",
            "invalid_address",
        ),
        (
            {"type": "bounce", "status": "5.7.26", "bounce_classification": "Technical Failure"},
            "failed",
            "5.7.26",
            "auth_or_config_error",
        ),
        # Nobody could say why: unknown, so failed (never a guessed category).
        (
            {
                "type": "bounce",
                "status": "5.0.0",
                "bounce_classification": "Unclassified",
                "reason": "550 5.0.0 Message rejected",
            },
            "failed",
            "5.0.0",
            "unknown",
        ),
        # No status and no classification: the reply's own code, else the bounce type.
        (
            {"type": "bounce", "reason": "554 5.7.1 Message refused as spam"},
            "failed",
            "",
            "blocked_spam",
        ),
        ({"type": "bounce"}, "bounced", "bounce", "invalid_address"),
        ({"type": "blocked"}, "failed", "blocked", "blocked_spam"),
    ],
)
def test_a_sendgrid_bounce_is_bounced_or_failed_by_its_reason(fields, status, code, category):
    values = only(parse(source_of("sendgrid"), sendgrid_bounce(**fields)))
    assert (values["status"], values["error_code"]) == (status, code)
    assert reason_of(values).category == category


@pytest.mark.parametrize(
    ("reason", "status", "category"),
    [
        ("Bounced Address", "suppressed", "invalid_address"),
        ("Unsubscribed Address", "suppressed", "unsubscribed_suppressed"),
        ("Spam Reporting Address", "suppressed", "unsubscribed_suppressed"),
        ("Invalid", "failed", "invalid_address"),
        ("Spam Content", "failed", "content_rejected"),
        ("Invalid SMTPAPI header", "failed", "auth_or_config_error"),
        ("Recipient List over Package Quota", "failed", "auth_or_config_error"),
    ],
)
def test_a_sendgrid_drop_was_never_attempted(reason, status, category):
    event = {**fixture_json("sendgrid", "04_dropped_unsubscribed.json")[0], "reason": reason}
    values = only(parse(source_of("sendgrid"), [event]))
    assert outcome(values) == (status, category)


def test_a_sendgrid_deferral_is_explained_by_the_reply_else_by_sendgrids_word():
    deferred = fixture_json("sendgrid", "01_processed_deferred_delivered.json")[2]
    values = only(parse(source_of("sendgrid"), [deferred]))
    assert (values["status"], values["error_code"]) == ("deferred", "")
    assert reason_of(values).key == "smtp:4.3.0"

    silent = {**deferred, "response": "try again later"}
    values = only(parse(source_of("sendgrid"), [silent]))
    assert (values["status"], values["error_code"]) == ("deferred", "deferred")
    assert reason_of(values).category == "provider_outage_transient"


# --- Postmark: every documented bounce TypeCode ---

POSTMARK_TYPES = [
    # (Type, TypeCode, Details, status; None: ignored, the reason category)
    ("HardBounce", 1, "smtp;550 5.1.1 User unknown", "bounced", "invalid_address"),
    ("Transient", 2, "smtp;451 4.4.1 No answer", "deferred", "provider_outage_transient"),
    ("Unsubscribe", 16, "Please remove me", None, None),
    ("Subscribe", 32, "Please add me", None, None),
    ("AutoResponder", 64, "I am out of the office until Monday", None, None),
    ("AddressChange", 128, "I have a new address", None, None),
    ("DnsError", 256, "DNS lookup failed", "failed", "provider_outage_transient"),
    ("SpamNotification", 512, "smtp;550 Rejected as bulk mail", "failed", "blocked_spam"),
    ("OpenRelayTest", 1024, "relay test", None, None),
    ("Unknown", 2048, "Undeliverable", "failed", "unknown"),
    ("Unknown", 2048, "smtp;550 5.7.26 Unauthenticated email", "failed", "auth_or_config_error"),
    ("Unknown", 2048, "smtp;550 5.1.1 No such user", "bounced", "invalid_address"),
    ("SoftBounce", 4096, "smtp;552 5.2.2 Mailbox full", "bounced", "mailbox_full"),
    ("VirusNotification", 8192, "Virus found", "failed", "content_rejected"),
    ("ChallengeVerification", 16384, "Please confirm you sent this", None, None),
    ("BadEmailAddress", 100000, "Invalid address", "failed", "invalid_address"),
    ("SpamComplaint", 100001, "Marked as spam", "complained", "spam_complaint"),
    ("ManuallyDeactivated", 100002, "Deactivated", "suppressed", "unsubscribed_suppressed"),
    ("Unconfirmed", 100003, "Not confirmed", "suppressed", "unsubscribed_suppressed"),
    ("Blocked", 100006, "smtp;554 blocked by blocklist", "failed", "blocked_spam"),
    ("SMTPApiError", 100007, "Bad request", "failed", "auth_or_config_error"),
    ("InboundError", 100008, "Inbound hook failed", None, None),
    ("DMARCPolicy", 100009, "smtp;550 5.7.1 DMARC", "failed", "auth_or_config_error"),
    ("TemplateRenderingFailed", 100010, "Missing variable", "failed", "auth_or_config_error"),
]


@pytest.mark.parametrize(
    ("type_name", "type_code", "details", "status", "category"),
    POSTMARK_TYPES,
    ids=[f"{t[0]}-{t[2][:20]}" for t in POSTMARK_TYPES],
)
def test_every_postmark_bounce_type_code_has_its_documented_outcome(
    type_name, type_code, details, status, category
):
    body = {
        **fixture_json("postmark", "02_bounce_hard_1.json"),
        "Type": type_name,
        "TypeCode": type_code,
        "Details": details,
    }
    parsed = parse(source_of("postmark"), body)
    if status is None:
        assert parsed.records == [] and parsed.problems == []
        assert parsed.ignored[0].startswith(f"Postmark {type_name!r} bounce record")
        return
    values = only(parsed)
    assert outcome(values) == (status, category)


def test_the_postmark_table_covers_every_documented_type_code():
    from notifwatch.ingest.providers import adapter_for

    documented = {code for _, code, *_ in POSTMARK_TYPES}
    assert set(adapter_for("postmark").status_by_type_code) == documented


# --- Mailgun: severity temporary is retried; permanent (and "old") is final ---


def mailgun_failure(severity: str, reason: str, **delivery) -> dict:
    body = fixture_json("mailgun", "02_failed_permanent_user_unknown.json")
    data = body["event-data"]
    data.update(severity=severity, reason=reason)
    data["delivery-status"] = {"attempt-no": 1, "description": "", **delivery}
    return body


@pytest.mark.parametrize(
    ("severity", "reason", "delivery", "status", "code", "category"),
    [
        # Mailgun's own code for a domain without a mail server, still retried.
        (
            "temporary",
            "generic",
            {"code": 498, "message": "No MX for [exmaple.com]"},
            "deferred",
            "498",
            "invalid_address",
        ),
        # ... and once Mailgun gave up on it.
        (
            "permanent",
            "generic",
            {"code": 498, "message": "No MX for [exmaple.com]"},
            "bounced",
            "498",
            "invalid_address",
        ),
        # A generic permanent failure whose reply says spam block, not a missing mailbox.
        (
            "permanent",
            "generic",
            {"code": 550, "message": "5.7.1 Message rejected as spam"},
            "failed",
            "550",
            "blocked_spam",
        ),
        (
            "permanent",
            "bounce",
            {"code": 550, "message": "5.7.26 Unauthenticated email", "enhanced-code": "5.7.26"},
            "failed",
            "5.7.26",
            "auth_or_config_error",
        ),
        # A real shape: a 4xx code on a permanent failure, the sender's domain refused.
        (
            "permanent",
            "generic",
            {"code": 450, "message": "4.1.8 <bounce+x@mg.example>: Sender address rejected"},
            "failed",
            "450",
            "auth_or_config_error",
        ),
        # "old": Mailgun stopped retrying; the last reply says why it failed.
        (
            "permanent",
            "old",
            {"code": 452, "message": "4.2.2 Mailbox full", "enhanced-code": "4.2.2"},
            "bounced",
            "4.2.2",
            "mailbox_full",
        ),
        (
            "permanent",
            "old",
            {"code": 421, "message": "4.4.1 No answer from host"},
            "failed",
            "421",
            "provider_outage_transient",
        ),
        (
            "permanent",
            "old",
            {"code": 0, "message": ""},
            "failed",
            "old",
            "provider_outage_transient",
        ),
        (
            "temporary",
            "greylisted",
            {"code": 451, "message": "4.7.1 Greylisted, try again later"},
            "deferred",
            "greylisted",
            "provider_outage_transient",
        ),
        (
            "temporary",
            "espblock",
            {"code": 421, "message": "Too many connections"},
            "deferred",
            "espblock",
            "rate_limited",
        ),
        (
            "permanent",
            "suppress-bounce",
            {"code": 605, "message": "Not delivering to previously bounced address"},
            "suppressed",
            "suppress-bounce",
            "invalid_address",
        ),
        (
            "permanent",
            "suppress-complaint",
            {"code": 607, "message": "Not delivering to a user who marked your messages as spam"},
            "suppressed",
            "suppress-complaint",
            "unsubscribed_suppressed",
        ),
    ],
)
def test_a_mailgun_failure_is_read_from_its_severity_and_last_reply(
    severity, reason, delivery, status, code, category
):
    source = source_of("mailgun")
    values = only(parse(source, mailgun_failure(severity, reason, **delivery)))
    assert (values["status"], values["error_code"]) == (status, code)
    assert reason_of(values).category == category


def test_a_mailgun_rejection_was_never_attempted():
    source = source_of("mailgun")
    body = fixture_json("mailgun", "01_delivered.json")
    body["event-data"].update(
        event="rejected", reject={"reason": "Sandbox subdomains are for test purposes only"}
    )
    values = only(parse(source, body))
    assert outcome(values) == ("failed", "auth_or_config_error")


# --- Amazon SES: every bounce is final; delays are retried; replies arrived ---


def ses_bounce(bounce_type: str, subtype: str, recipient: dict, event_publishing=False) -> dict:
    inner = json.loads(fixture_json("ses", "02_bounce_permanent_general.json")["Message"])
    inner["bounce"].update(bounceType=bounce_type, bounceSubType=subtype)
    inner["bounce"]["bouncedRecipients"] = [
        {"emailAddress": "omar.haddad@example.net", **recipient}
    ]
    if event_publishing:
        inner["eventType"] = inner.pop("notificationType")
    return ses_message(inner)


FAILED_DSN = {"action": "failed"}


@pytest.mark.parametrize(
    ("bounce_type", "subtype", "recipient", "status", "code", "category"),
    [
        (
            "Permanent",
            "General",
            {**FAILED_DSN, "status": "5.0.0", "diagnosticCode": "smtp; 550 mailbox unavailable"},
            "bounced",
            "Permanent/General",
            "invalid_address",
        ),
        # SES could not say why, the recipient's report can: a spam block.
        (
            "Permanent",
            "General",
            {**FAILED_DSN, "status": "5.7.1", "diagnosticCode": "smtp; 550 5.7.1 Blocked"},
            "failed",
            "5.7.1",
            "blocked_spam",
        ),
        (
            "Permanent",
            "NoEmail",
            {**FAILED_DSN, "status": "5.1.1"},
            "bounced",
            "Permanent/NoEmail",
            "invalid_address",
        ),
        (
            "Permanent",
            "Suppressed",
            {**FAILED_DSN, "status": "5.1.1"},
            "suppressed",
            "Permanent/Suppressed",
            "invalid_address",
        ),
        (
            "Permanent",
            "OnAccountSuppressionList",
            {**FAILED_DSN, "status": "5.1.1"},
            "suppressed",
            "Permanent/OnAccountSuppressionList",
            "unsubscribed_suppressed",
        ),
        # Transient bounces come only after SES stopped retrying: final.
        (
            "Transient",
            "MailboxFull",
            {**FAILED_DSN, "status": "5.2.2"},
            "bounced",
            "Transient/MailboxFull",
            "mailbox_full",
        ),
        (
            "Transient",
            "ContentRejected",
            {**FAILED_DSN, "status": "5.6.0"},
            "failed",
            "Transient/ContentRejected",
            "content_rejected",
        ),
        (
            "Transient",
            "General",
            {**FAILED_DSN, "status": "4.4.7", "diagnosticCode": "smtp; 554 4.4.7 Message expired"},
            "failed",
            "4.4.7",
            "provider_outage_transient",
        ),
        (
            "Undetermined",
            "Undetermined",
            {},
            "failed",
            "Undetermined/Undetermined",
            "unknown",
        ),
    ],
)
def test_an_ses_bounce_is_bounced_or_failed_by_its_reason(
    bounce_type, subtype, recipient, status, code, category
):
    for event_publishing in (False, True):
        body = ses_bounce(bounce_type, subtype, recipient, event_publishing)
        values = only(parse(source_of("ses"), body, SNS_TEXT))
        assert (values["status"], values["error_code"]) == (status, code)
        assert reason_of(values).category == category


@pytest.mark.parametrize(
    "recipient",
    [{}, {"diagnosticCode": "Auto-Reply: I am out of the office until 24 March"}],
    ids=["no delivery report", "out-of-office text"],
)
def test_an_ses_automatic_reply_means_the_message_arrived(recipient):
    parsed = parse(source_of("ses"), ses_bounce("Transient", "General", recipient), SNS_TEXT)
    assert parsed.records == [] and parsed.problems == []
    assert "automatic reply" in parsed.ignored[0]


def ses_complaint(**complaint) -> dict:
    inner = json.loads(fixture_json("ses", "09_complaint_abuse.json")["Message"])
    inner["complaint"].pop("complaintFeedbackType")
    inner["complaint"].update(complaint)
    return ses_message(inner)


def test_an_ses_complaint_on_the_account_suppression_list_was_never_sent():
    body = ses_complaint(complaintSubType="OnAccountSuppressionList")
    values = only(parse(source_of("ses"), body, SNS_TEXT))
    assert (values["status"], values["error_code"]) == (
        "suppressed",
        "Complaint/OnAccountSuppressionList",
    )
    assert reason_of(values).fix_owner == "recipient_choice"


@pytest.mark.parametrize("feedback", ["not-spam", "auth-failure"])
def test_ses_feedback_that_is_not_the_customers_complaint_is_ignored(feedback):
    parsed = parse(source_of("ses"), ses_complaint(complaintFeedbackType=feedback), SNS_TEXT)
    assert parsed.records == []
    assert parsed.ignored[0].startswith(f"Amazon SES {feedback!r} feedback: ")


def test_an_ses_complaint_without_a_feedback_report_is_still_a_complaint():
    values = only(parse(source_of("ses"), ses_complaint(), SNS_TEXT))
    assert (values["status"], values["error_code"]) == ("complained", "")


def ses_event(event_type: str, detail: str, payload: dict) -> dict:
    inner = json.loads(fixture_json("ses", "01_delivery.json")["Message"])
    del inner["notificationType"], inner["delivery"]
    inner["eventType"] = event_type
    inner[detail] = payload
    return ses_message(inner)


@pytest.mark.parametrize(
    ("delay_type", "status", "code", "category"),
    [
        ("MailboxFull", "4.2.2", "MailboxFull", "mailbox_full"),
        ("SpamDetected", "4.7.0", "SpamDetected", "blocked_spam"),
        ("General", "4.4.1", "4.4.1", "provider_outage_transient"),
        ("General", "", "General", "provider_outage_transient"),
        ("Undetermined", "", "Undetermined", "unknown"),
        ("SendingDeferral", "", "SendingDeferral", "provider_outage_transient"),
        (
            "BYOIPHostNameLookupUnavailable",
            "",
            "BYOIPHostNameLookupUnavailable",
            "auth_or_config_error",
        ),
    ],
)
def test_an_ses_delivery_delay_is_a_deferral_explained_by_its_type(
    delay_type, status, code, category
):
    delay = {
        "delayType": delay_type,
        "timestamp": "2025-03-14T08:20:00.000Z",
        "expirationTime": "2025-03-15T08:15:00.000Z",
        "delayedRecipients": [
            {"emailAddress": "jonas.berg@example.org", "status": status, "diagnosticCode": ""}
        ],
    }
    values = only(
        parse(source_of("ses"), ses_event("DeliveryDelay", "deliveryDelay", delay), SNS_TEXT)
    )
    assert (values["status"], values["error_code"]) == ("deferred", code)
    assert reason_of(values).category == category


@pytest.mark.parametrize(
    ("event_type", "detail", "payload", "code", "category"),
    [
        ("Reject", "reject", {"reason": "Bad content"}, "Reject", "content_rejected"),
        (
            "Rendering Failure",
            "failure",
            {"templateName": "receipt", "errorMessage": "Attribute 'name' is not present"},
            "RenderingFailure",
            "auth_or_config_error",
        ),
    ],
)
def test_an_ses_rejection_or_rendering_failure_was_never_attempted(
    event_type, detail, payload, code, category
):
    values = only(parse(source_of("ses"), ses_event(event_type, detail, payload), SNS_TEXT))
    assert (values["status"], values["error_code"]) == ("failed", code)
    assert reason_of(values).category == category


# --- the other anymail providers: the same rule, where the catalogue can read them ---


def test_another_providers_bounce_is_failed_when_its_text_says_spam_block():
    event = {
        "event": "hard_bounce",
        "email": "a@example.com",
        "ts_epoch": 1741946403000,
        "message-id": "<202503141000.1@smtp-relay.mailin.fr>",
        "reason": "550 5.7.1 Message rejected as spam",
    }
    assert only(parse(source_of("brevo"), event))["status"] == "failed"


def test_another_providers_bounce_keeps_its_word_when_the_catalogue_cannot_read_it():
    event = {
        "event": "hard_bounce",
        "email": "a@example.com",
        "ts_epoch": 1741946403000,
        "message-id": "<202503141000.2@smtp-relay.mailin.fr>",
        "reason": "Recipient domain has been retired",
    }
    assert only(parse(source_of("brevo"), event))["status"] == "bounced"
