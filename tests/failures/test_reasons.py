import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notifwatch.failures.reasons import (
    CATALOG_PATH,
    CATEGORIES,
    FIX_OWNERS,
    classify_reason,
    load_catalog,
    reason_by_key,
)


def _catalog_rows() -> list[dict[str, str]]:
    with CATALOG_PATH.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# Codes and messages as the sample payloads carry them, with the outcome the samples expect.
SAMPLE_FAILURES = [
    (
        "sendgrid",
        "5.1.1",
        "550 5.1.1 <d@example.org>: Recipient address rejected: no such user",
        "invalid_address",
        True,
    ),
    ("sendgrid", "Invalid Address", None, "invalid_address", True),
    ("sendgrid", "Unsubscribed Address", None, "unsubscribed_suppressed", True),
    ("sendgrid", "spamreport", None, "spam_complaint", True),
    ("sendgrid", "Invalid", None, "invalid_address", True),
    ("postmark", 1, "smtp;550 5.1.1 <p@example.net>: User unknown", "invalid_address", True),
    ("postmark", 4096, "smtp;552 5.2.2 Mailbox full: over quota", "mailbox_full", False),
    (
        "postmark",
        2,
        "smtp;451 4.4.1 No answer from mx2.example.net",
        "provider_outage_transient",
        False,
    ),
    ("postmark", 100001, "Complaint received via ISP feedback loop", "spam_complaint", True),
    ("postmark", "ManualSuppression", None, "unsubscribed_suppressed", True),
    (
        "mailgun",
        550,
        "5.1.1 <c@example.com>: Recipient address rejected: mailbox does not exist",
        "invalid_address",
        True,
    ),
    (
        "mailgun",
        452,
        "4.2.2 The recipient's mailbox is full, try again later",
        "mailbox_full",
        False,
    ),
    ("mailgun", 606, "", "unsubscribed_suppressed", True),
    ("mailgun", "complained", None, "spam_complaint", True),
    (
        "ses",
        "Permanent/General",
        "smtp; 550 Requested action not taken: mailbox unavailable",
        "invalid_address",
        True,
    ),
    (
        "ses",
        "Transient/MailboxFull",
        "smtp; 552 5.2.2 Mailbox full, quota exceeded",
        "mailbox_full",
        False,
    ),
    ("ses", "abuse", None, "spam_complaint", True),
    ("twilio", "30003", None, "landline_or_unreachable", False),
    ("twilio", "30006", None, "landline_or_unreachable", True),
    ("twilio", "21610", None, "unsubscribed_suppressed", True),
    (
        "twilio",
        21614,
        "'To' number +14155550118 is not a valid mobile number",
        "landline_or_unreachable",
        True,
    ),
    ("fcm", "UNREGISTERED", "Requested entity was not found.", "device_token_invalid", True),
    ("fcm", "QUOTA_EXCEEDED", None, "rate_limited", False),
    ("apns", "BadDeviceToken", None, "device_token_invalid", True),
    (
        "sendgrid",
        503,
        "POST /v3/mail/send returned 503 Service Unavailable",
        "provider_outage_transient",
        False,
    ),
    (
        "sendgrid",
        "ETIMEDOUT",
        "POST /v3/mail/send timed out after 10000 ms",
        "provider_outage_transient",
        False,
    ),
]


@pytest.mark.parametrize(("provider", "code", "message", "category", "permanent"), SAMPLE_FAILURES)
def test_it_classifies_sample_failures(provider, code, message, category, permanent):
    reason = classify_reason(provider, code, message)

    assert reason is not None
    assert (reason.category, reason.permanent, reason.known) == (category, permanent, True)


@pytest.mark.parametrize(
    ("provider", "code", "message", "key", "category", "fix_owner"),
    [
        ("smtp", "5.7.1", None, "smtp:5.7.1", "blocked_spam", "our_setup"),
        ("smtp", "4.2.1", None, "smtp:4.2.1", "rate_limited", "provider"),
        ("smtp", "5.2.2", None, "smtp:5.2.2", "mailbox_full", "recipient_data"),
        ("twilio", 21211, None, "twilio:21211", "invalid_address", "recipient_data"),
        ("twilio", 21610, None, "twilio:21610", "unsubscribed_suppressed", "recipient_choice"),
        ("twilio", 30034, None, "twilio:30034", "auth_or_config_error", "our_setup"),
        ("twilio", 30007, None, "twilio:30007", "carrier_filtered", "our_setup"),
        (
            "fcm",
            "SENDER_ID_MISMATCH",
            None,
            "fcm:SENDER_ID_MISMATCH",
            "auth_or_config_error",
            "our_setup",
        ),
        (
            "fcm",
            "THIRD_PARTY_AUTH_ERROR",
            None,
            "fcm:THIRD_PARTY_AUTH_ERROR",
            "auth_or_config_error",
            "our_setup",
        ),
        (
            "apns",
            "ExpiredProviderToken",
            None,
            "apns:ExpiredProviderToken",
            "auth_or_config_error",
            "our_setup",
        ),
        ("apns", "PayloadTooLarge", None, "apns:PayloadTooLarge", "content_rejected", "our_setup"),
        ("apns", "TooManyRequests", None, "apns:TooManyRequests", "rate_limited", "provider"),
        (
            "sendgrid",
            "Frequency or Volume Too High",
            None,
            "sendgrid:Frequency or Volume Too High",
            "rate_limited",
            "provider",
        ),
        (
            "sendgrid",
            "Spam Reporting Address",
            None,
            "sendgrid:Spam Reporting Address",
            "unsubscribed_suppressed",
            "recipient_choice",
        ),
        (
            "postmark",
            100010,
            None,
            "postmark:TemplateRenderingFailed",
            "auth_or_config_error",
            "our_setup",
        ),
        (
            "mailgun",
            "suppress-bounce",
            None,
            "mailgun:suppress-bounce",
            "invalid_address",
            "recipient_data",
        ),
        (
            "ses",
            "Permanent/OnAccountSuppressionList",
            None,
            "ses:Permanent/OnAccountSuppressionList",
            "unsubscribed_suppressed",
            "our_setup",
        ),
        (None, "timeout", None, "timeout", "provider_outage_transient", "provider"),
        ("http", 401, None, "http:401", "auth_or_config_error", "our_setup"),
        ("http", 429, None, "http:429", "rate_limited", "provider"),
    ],
)
def test_it_classifies_documented_codes(provider, code, message, key, category, fix_owner):
    reason = classify_reason(provider, code, message)

    assert reason is not None
    assert (reason.key, reason.category, reason.fix_owner) == (key, category, fix_owner)


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("fcm", "unregistered"),
        ("FCM", "UNREGISTERED"),
        ("apns", "baddevicetoken"),
        ("twilio", 21614),
        ("twilio", " 21614 "),
        ("postmark", "hardbounce"),
        ("sendgrid", "unsubscribed address"),
    ],
)
def test_it_matches_codes_as_ints_strings_and_any_case(provider, code):
    reason = classify_reason(provider, code)

    assert reason is not None and reason.known


def test_it_resolves_postmark_type_codes_and_names_to_the_same_row():
    assert classify_reason("postmark", 1) == classify_reason("postmark", "HardBounce")
    assert reason_by_key("postmark:1") == reason_by_key("postmark:HardBounce")
    assert reason_by_key("postmark:1").key == "postmark:HardBounce"


@pytest.mark.parametrize(("code", "message"), [(None, None), ("", ""), (None, "   "), ("  ", None)])
def test_it_returns_none_when_there_is_nothing_to_explain(code, message):
    assert classify_reason("sendgrid", code, message) is None


def test_it_prefers_the_exact_provider_row_over_the_generic_one():
    assert classify_reason("fcm", 404).key == "fcm:NOT_FOUND"
    assert classify_reason("http", 404).key == "http:404"
    assert classify_reason("mailgun", 498).key == "mailgun:498"
    # A definite provider verdict is not second-guessed by a code in the text.
    reason = classify_reason("ses", "Permanent/General", "smtp; 550 5.7.1 blocked")
    assert reason.key == "ses:Permanent/General"


def test_it_prefers_an_enhanced_code_in_the_message_over_a_basic_one():
    assert classify_reason(None, None, "550 5.1.1 <x@y>: Recipient address rejected").key == (
        "smtp:5.1.1"
    )
    assert classify_reason("sendgrid", None, "552 5.2.2 Mailbox full").category == "mailbox_full"
    # The basic code alone would say "missing mailbox"; the enhanced code says spam block.
    assert classify_reason("mailgun", 550, "5.7.1 Message blocked as spam").key == "smtp:5.7.1"
    assert classify_reason("smtp", 450, "4.2.1 receiving mail too quickly").category == (
        "rate_limited"
    )


def test_it_reads_a_basic_code_from_the_message_when_there_is_no_enhanced_one():
    reason = classify_reason(None, None, "smtp; 550 Requested action not taken")

    assert reason.key == "smtp:550"


def test_it_refines_an_unknown_provider_verdict_from_the_message():
    reason = classify_reason("postmark", "Unknown", "smtp;550 5.7.26 unauthenticated email")

    assert reason.key == "smtp:5.7.26"


def test_it_tells_web_statuses_from_mail_server_replies():
    assert classify_reason("sendgrid", 503).key == "http:503"
    assert classify_reason(None, "HTTP 401").key == "http:401"
    assert classify_reason("smtp", 503).key == "fallback:smtp_5xx"


@pytest.mark.parametrize(
    ("provider", "code", "message", "key", "category", "permanent"),
    [
        ("smtp", 471, None, "fallback:smtp_4xx", "provider_outage_transient", False),
        ("sendgrid", "4.9.9", None, "fallback:smtp_4xx", "provider_outage_transient", False),
        ("smtp", "5.9.9", None, "fallback:smtp_5xx", "unknown", True),
        ("mailgun", 599, None, "fallback:smtp_5xx", "unknown", True),
        ("mailgun", "weird", "571 Delivery not authorized", "fallback:smtp_5xx", "unknown", True),
        ("fcm", 507, None, "fallback:http_5xx", "provider_outage_transient", False),
        ("apns", 418, None, "fallback:http_4xx", "unknown", None),
        ("acme", "XYZ_BROKEN", None, "fallback:unknown", "unknown", None),
        (None, None, "something odd happened", "fallback:unknown", "unknown", None),
    ],
)
def test_it_falls_back_by_class_and_marks_it_unknown(
    provider, code, message, key, category, permanent
):
    reason = classify_reason(provider, code, message)

    assert (reason.key, reason.category, reason.permanent, reason.known) == (
        key,
        category,
        permanent,
        False,
    )


def test_it_does_not_read_codes_out_of_phone_numbers_or_addresses():
    assert classify_reason("twilio", None, "to +1 415 555 0118 failed").key == "fallback:unknown"
    assert classify_reason(None, None, "connect to 10.5.1.1 refused").key == "fallback:unknown"
    assert classify_reason(None, None, "gave up after 45000 ms").key == "fallback:unknown"


def test_it_looks_every_key_up_again():
    for row in _catalog_rows():
        for code in row["code"].split("|"):
            key = code if row["provider"] == "*" else f"{row['provider']}:{code}"
            reason = reason_by_key(key)
            assert reason is not None, key
            assert reason_by_key(reason.key) == reason
    assert reason_by_key("fallback:unknown").known is False
    assert reason_by_key("smtp:5.1.1").known is True
    assert reason_by_key("nope:gone") is None
    assert reason_by_key("") is None


def test_it_keeps_every_catalog_row_valid():
    rows = _catalog_rows()
    seen: set[tuple[str, str]] = set()

    assert len(rows) >= 150
    for row in rows:
        assert row["category"] in CATEGORIES, row
        assert row["fix_owner"] in FIX_OWNERS, row
        assert row["permanent"] in ("yes", "no", ""), row
        assert row["sentence"].strip() and row["action"].strip(), row
        for code in row["code"].split("|"):
            pair = (row["provider"].lower(), code.strip().casefold())
            assert pair not in seen, f"duplicate {pair}"
            seen.add(pair)


def test_it_writes_sentences_in_plain_words():
    jargon = re.compile(r"\b(MX|SMTP|DSN|DNS|HTTP|API|IP|TLS|SPF|DKIM|DMARC|JWT|token)\b")
    for row in _catalog_rows():
        sentence = row["sentence"]
        assert not re.search(r"\d", sentence), f"code in sentence: {sentence}"
        assert not jargon.search(sentence), f"jargon in sentence: {sentence}"
        # One sentence: a single full stop, at the end.
        assert sentence.endswith(".") and sentence.count(". ") == 0, sentence
        assert row["action"].endswith("."), row["action"]


def test_it_rejects_a_catalog_with_a_bad_row(tmp_path: Path):
    bad = tmp_path / "catalog.csv"
    bad.write_text(
        "provider,code,category,permanent,fix_owner,sentence,action\n"
        "smtp,5.1.1,invalid_address,yes,recipient_data,Gone.,Fix it.\n"
        "smtp,5.1.1,not_a_category,maybe,nobody,Gone.,Fix it.\n",
        encoding="utf-8",
    )

    with pytest.raises(ValueError, match="line 3: bad category .* fix_owner .* permanent .*dup"):
        load_catalog(bad)


def test_it_imports_without_django_configured():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    script = (
        "from notifwatch.failures.reasons import classify_reason;"
        "print(classify_reason('twilio', 21614).category)"
    )
    root = Path(__file__).resolve().parents[2]

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "landline_or_unreachable"


# Text messages and push: what each documented code means, and so whether a refusal with it is
# the customer's side (bounced) or ours, the carrier's or the provider's (failed).
@pytest.mark.parametrize(
    ("provider", "code", "category", "fix_owner", "refused_as"),
    [
        ("twilio", "30003", "landline_or_unreachable", "recipient_data", "bounced"),
        ("twilio", "30005", "invalid_address", "recipient_data", "bounced"),
        ("twilio", "30006", "landline_or_unreachable", "recipient_data", "bounced"),
        ("twilio", "21211", "invalid_address", "recipient_data", "bounced"),
        ("twilio", "21614", "landline_or_unreachable", "recipient_data", "bounced"),
        ("twilio", "21635", "landline_or_unreachable", "recipient_data", "bounced"),
        ("twilio", "63003", "invalid_address", "recipient_data", "bounced"),
        ("twilio", "63024", "invalid_address", "recipient_data", "bounced"),
        ("twilio", "30004", "carrier_filtered", "unknown", "failed"),
        ("twilio", "30007", "carrier_filtered", "our_setup", "failed"),
        ("twilio", "30008", "unknown", "unknown", "failed"),
        ("twilio", "30019", "content_rejected", "our_setup", "failed"),
        ("twilio", "30034", "auth_or_config_error", "our_setup", "failed"),
        ("twilio", "30035", "auth_or_config_error", "our_setup", "failed"),
        ("twilio", "30036", "rate_limited", "our_setup", "failed"),
        ("twilio", "30450", "carrier_filtered", "provider", "failed"),
        ("twilio", "30500", "provider_outage_transient", "provider", "failed"),
        ("twilio", "21612", "auth_or_config_error", "our_setup", "failed"),
        ("twilio", "21660", "auth_or_config_error", "our_setup", "failed"),
        ("twilio", "21703", "auth_or_config_error", "our_setup", "failed"),
        ("twilio", "63016", "content_rejected", "our_setup", "failed"),
        ("twilio", "63018", "rate_limited", "our_setup", "failed"),
        ("twilio", "63021", "content_rejected", "our_setup", "failed"),
        ("twilio", "63032", "carrier_filtered", "provider", "failed"),
        # Opt-outs: recorded as suppressed, whatever the refusal was called.
        ("twilio", "21610", "unsubscribed_suppressed", "recipient_choice", "failed"),
        ("twilio", "63014", "unsubscribed_suppressed", "recipient_choice", "failed"),
        ("fcm", "UNREGISTERED", "device_token_invalid", "recipient_data", "bounced"),
        ("fcm", "NOT_FOUND", "device_token_invalid", "recipient_data", "bounced"),
        # The same code for a bad registration and for a badly built message: unknown.
        ("fcm", "INVALID_ARGUMENT", "unknown", "unknown", "failed"),
        ("fcm", "SENDER_ID_MISMATCH", "auth_or_config_error", "our_setup", "failed"),
        ("fcm", "MismatchSenderId", "auth_or_config_error", "our_setup", "failed"),
        ("apns", "BadDeviceToken", "device_token_invalid", "recipient_data", "bounced"),
        ("apns", "Unregistered", "device_token_invalid", "recipient_data", "bounced"),
        ("apns", "ExpiredToken", "device_token_invalid", "recipient_data", "bounced"),
        ("apns", "DeviceTokenNotForTopic", "auth_or_config_error", "our_setup", "failed"),
    ],
)
def test_it_explains_text_and_push_codes_by_their_documented_meaning(
    provider, code, category, fix_owner, refused_as
):
    from notifwatch.failures.reasons import refusal_status

    reason = classify_reason(provider, code)

    assert (reason.category, reason.fix_owner, reason.known) == (category, fix_owner, True)
    assert refusal_status(reason) == refused_as


def test_it_calls_an_undocumented_text_message_code_unknown():
    reason = classify_reason("twilio", "39999", "Some new carrier error")

    assert (reason.category, reason.known) == ("unknown", False)


# A raw code is shown beside the reason anyway; the words must not repeat or depend on it.
RAW_CODE = re.compile(
    r"\d"  # "550", "5.7.26", "TypeCode 512"
    r"|\b[A-Za-z]*[a-z][A-Z][A-Za-z]*\b"  # "TypeCode", "HardBounce", "OnAccountSuppressionList"
    r"|\w_\w"  # "device_token", "QUOTA_EXCEEDED"
)


@pytest.mark.parametrize("field", ["sentence", "action"])
def test_every_sentence_and_action_is_free_of_raw_codes(field):
    for row in _catalog_rows():
        text = row[field]
        assert not RAW_CODE.search(text), f"raw code in {field} of {row['code']}: {text}"
        # The row's own codes, unless they are plain words ("bounce", "abuse").
        for code in row["code"].split("|"):
            if re.search(r"[\d_/-]|[a-z][A-Z]", code):
                assert code.strip().casefold() not in text.casefold(), (row["code"], text)


def test_the_raw_code_check_catches_the_codes_it_is_for():
    for text in ["Fix 5.7.26.", "TypeCode 512 said so.", "A HardBounce.", "QUOTA_EXCEEDED."]:
        assert RAW_CODE.search(text), text
    assert not RAW_CODE.search("Ask the customer to free up mailbox space, then resend.")


# Email: what each provider's documented code means, and so whether a refusal with it is the
# customer's side (bounced) or ours, the receiving side's policy or the provider's (failed).
@pytest.mark.parametrize(
    ("provider", "code", "message", "category", "refused_as"),
    [
        ("smtp", "5.1.1", None, "invalid_address", "bounced"),
        ("smtp", "5.2.1", None, "invalid_address", "bounced"),
        ("smtp", "5.2.2", None, "mailbox_full", "bounced"),
        ("smtp", "5.7.1", None, "blocked_spam", "failed"),
        ("smtp", "5.7.26", None, "auth_or_config_error", "failed"),
        ("smtp", "5.4.7", None, "provider_outage_transient", "failed"),
        ("smtp", "5.0.0", None, "unknown", "failed"),
        ("sendgrid", "bounce", None, "invalid_address", "bounced"),
        ("sendgrid", "blocked", None, "blocked_spam", "failed"),
        ("sendgrid", "Mailbox Unavailable", None, "invalid_address", "bounced"),
        ("sendgrid", "Reputation", None, "blocked_spam", "failed"),
        ("sendgrid", "Technical Failure", None, "auth_or_config_error", "failed"),
        ("sendgrid", "Unclassified", None, "unknown", "failed"),
        ("postmark", 1, None, "invalid_address", "bounced"),
        ("postmark", 4096, None, "mailbox_full", "bounced"),
        ("postmark", 256, None, "provider_outage_transient", "failed"),
        ("postmark", 512, None, "blocked_spam", "failed"),
        ("postmark", 2048, "Undeliverable", "unknown", "failed"),
        ("postmark", 2048, "smtp;550 5.1.1 No such user", "invalid_address", "bounced"),
        ("postmark", 100006, None, "blocked_spam", "failed"),
        ("postmark", 100009, None, "auth_or_config_error", "failed"),
        ("mailgun", 498, "No MX for [exmaple.com]", "invalid_address", "bounced"),
        ("mailgun", 550, "5.7.1 Message rejected as spam", "blocked_spam", "failed"),
        ("mailgun", "old", None, "provider_outage_transient", "failed"),
        ("mailgun", "generic", None, "unknown", "failed"),
        ("ses", "Permanent/General", None, "invalid_address", "bounced"),
        ("ses", "Permanent/NoEmail", None, "invalid_address", "bounced"),
        ("ses", "Transient/MailboxFull", None, "mailbox_full", "bounced"),
        ("ses", "Transient/ContentRejected", None, "content_rejected", "failed"),
        ("ses", "Transient/General", None, "unknown", "failed"),
        ("ses", "Undetermined/Undetermined", None, "unknown", "failed"),
    ],
)
def test_it_explains_email_codes_by_their_documented_meaning(
    provider, code, message, category, refused_as
):
    from notifwatch.failures.reasons import refusal_status

    reason = classify_reason(provider, code, message)

    assert reason.category == category
    assert refusal_status(reason) == refused_as


@pytest.mark.parametrize(
    ("code", "category", "fix_owner"),
    [
        ("MailboxFull", "mailbox_full", "recipient_data"),
        ("SpamDetected", "blocked_spam", "our_setup"),
        ("IPFailure", "rate_limited", "provider"),
        ("General", "provider_outage_transient", "provider"),
        ("Undetermined", "unknown", "unknown"),
        ("BYOIPHostNameLookupUnavailable", "auth_or_config_error", "our_setup"),
        ("SendingDeferral", "provider_outage_transient", "provider"),
        ("Complaint/OnAccountSuppressionList", "unsubscribed_suppressed", "recipient_choice"),
    ],
)
def test_it_explains_every_ses_delay_type_and_the_suppressed_complaint(code, category, fix_owner):
    reason = classify_reason("ses", code)

    assert (reason.key, reason.category, reason.fix_owner) == (f"ses:{code}", category, fix_owner)
