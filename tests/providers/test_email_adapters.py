"""Email provider adapters called directly: authenticate() on a request, parse() on a RawEvent."""

import hashlib
import hmac
import json
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from django.test import RequestFactory

from notifwatch.ingest.credentials import credential_hash
from notifwatch.ingest.models import Source
from notifwatch.ingest.processing import store_raw
from notifwatch.ingest.providers import Rejected, adapter_for, email, public_webhook_url
from notifwatch.ingest.providers.email import BasicAuthChallenge, sns_string_to_sign

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
SNS_TEXT = "text/plain; charset=UTF-8"
BASIC = "hooks:s3cret-pass"
MAILGUN_KEY = "notifwatch-test-mailgun-signing-key"
SNS_CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
)
EMAIL_KINDS = (
    "sendgrid",
    "postmark",
    "mailgun",
    "ses",
    "brevo",
    "mailersend",
    "mailjet",
    "mailtrap",
    "mandrill",
    "postal",
    "resend",
    "sparkpost",
    "unisender_go",
)


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str):
    return json.loads(fixture_bytes(provider, name))


def basic_auth(secret: str = BASIC) -> str:
    return "Basic " + b64encode(secret.encode()).decode()


def make_source(
    kind: str, *, basic: str | None = BASIC, signing_key: str = "", slug: str = ""
) -> Source:
    """A source as add_source leaves it: a hash for basic auth, or the signing key itself."""
    return Source.objects.create(
        slug=slug or f"{kind.replace('_', '-')}-test",
        name=kind,
        kind=kind,
        credential_hash=credential_hash(basic) if basic else "",
        signing_key=signing_key,
    )


def raw_of(source: Source, body, content_type: str = JSON, headers: dict | None = None):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return store_raw(
        source,
        "webhook",
        body,
        content_type=content_type,
        headers={"Content-Type": content_type, **(headers or {})},
    )


def parse(source: Source, body, content_type: str = JSON, headers: dict | None = None):
    return adapter_for(source.kind).parse(source, raw_of(source, body, content_type, headers))


def request_for(body, content_type: str = JSON, auth: str | None = BASIC, **headers):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if auth:
        headers["HTTP_AUTHORIZATION"] = basic_auth(auth)
    return RequestFactory().post("/hooks/x/", data=body, content_type=content_type, **headers)


def only(parsed):
    assert not parsed.problems, parsed.problems
    assert len(parsed.records) == 1, parsed
    return parsed.records[0].values


# --- Amazon SNS signatures, made with a certificate of our own ---


def make_sns_signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


SNS_KEY, SNS_CERT_PEM = make_sns_signer()


def sign_sns(message: dict, version: str = "1", key=SNS_KEY) -> dict:
    """The SNS message as Amazon would sign it (the samples' signatures are placeholders)."""
    message = {**message, "SignatureVersion": version, "SigningCertURL": SNS_CERT_URL}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {**message, "Signature": b64encode(signature).decode()}


def sns_headers(message: dict) -> dict:
    return {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": message["Type"],
        "HTTP_X_AMZ_SNS_MESSAGE_ID": message["MessageId"],
    }


def ses_message(inner: dict, **envelope) -> dict:
    """A SES notification in its SNS envelope, from an inner message dict."""
    return {
        "Type": "Notification",
        "MessageId": envelope.pop("MessageId", "5d2e0a4e-0000-4000-8000-000000000001"),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:harborpine-ses-feedback",
        "Message": json.dumps(inner),
        "Timestamp": "2025-03-14T10:00:05.000Z",
        **envelope,
    }


@pytest.fixture(autouse=True)
def sns_certificates(monkeypatch):
    """Certificate downloads answer with our test certificate; each URL asked is recorded."""
    email.sns_public_key.cache_clear()
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return SNS_CERT_PEM

    monkeypatch.setattr(email, "fetch_certificate", fetch)
    yield fetched
    email.sns_public_key.cache_clear()


# --- registry and setup help ---


def test_every_anymail_email_provider_has_an_adapter_with_setup_help():
    for kind in EMAIL_KINDS:
        adapter = adapter_for(kind)
        assert adapter is not None, kind
        assert adapter.kind == kind
        assert adapter.setup.events and adapter.setup.secret


def test_it_refuses_every_call_to_a_source_without_a_secret():
    source = make_source("postmark", basic=None)
    with pytest.raises(Rejected) as refused:
        adapter_for("postmark").authenticate(source, request_for({}))
    assert refused.value.status == 403
    assert "no secret" in refused.value.reason


def test_it_tells_add_source_which_secrets_are_signing_keys_to_keep():
    assert adapter_for("mailgun").keeps_signing_key(MAILGUN_KEY)
    assert adapter_for("mandrill").keeps_signing_key("mandrill-webhook-key")
    assert not adapter_for("mandrill").keeps_signing_key(BASIC)
    assert not adapter_for("postmark").keeps_signing_key("anything-at-all")


# --- basic auth (only the hash of user:password is kept) ---


@pytest.mark.parametrize("kind", ["sendgrid", "postmark", "brevo", "mailjet", "sparkpost"])
def test_it_accepts_the_basic_auth_pair_whose_hash_the_source_keeps(kind):
    source = make_source(kind)
    # Accepted means no Rejected raised (authenticate returns nothing on success).
    assert adapter_for(kind).authenticate(source, request_for([])) is None


@pytest.mark.parametrize("auth", [None, "hooks:wrong", "other:s3cret-pass"])
def test_it_challenges_missing_or_wrong_basic_auth(auth):
    source = make_source("sendgrid")
    with pytest.raises(BasicAuthChallenge) as refused:
        adapter_for("sendgrid").authenticate(source, request_for([], auth=auth))
    assert refused.value.status == 401
    assert refused.value.reason == "missing or wrong basic-auth credentials"
    assert refused.value.www_authenticate.startswith("Basic ")


# --- SendGrid ---


def test_sendgrid_reads_each_event_of_a_batch():
    source = make_source("sendgrid")
    parsed = parse(source, fixture_bytes("sendgrid", "01_processed_deferred_delivered.json"))
    assert not parsed.problems and not parsed.ignored
    values = [r.values for r in parsed.records]
    assert [v["status"] for v in values] == ["queued", "deferred", "deferred", "delivered"]
    first = values[0]
    assert first["provider"] == "sendgrid"
    assert first["channel"] == "email"
    assert first["provider_message_id"] == "qNgGf0kHrOq5kLKBmYoroW"
    assert first["notification_key"] == "ntf_7H2K9Q:email"
    assert first["recipient"] == "maria.kowalski@example.net"
    assert first["customer_id"] == "cus_10482"
    assert first["purpose"] == "order_shipped"
    assert first["refs"] == {"order_id": "ORD-2025-118734"}
    assert first["occurred_at"] == "2025-03-14T10:30:02+00:00"
    assert [v["attempt"] for v in values[1:3]] == ["1", "2"]
    assert values[1]["error_message"].startswith("421 4.7.0")
    assert len({v["event_id"] for v in values}) == 4
    assert parsed.records[1].raw["sg_event_id"] == "C78hjC90v3jJRWMn1eAXT0"


def test_sendgrid_bounce_carries_its_enhanced_status_code():
    source = make_source("sendgrid")
    parsed = parse(source, fixture_bytes("sendgrid", "02_bounce_hard_invalid_address.json"))
    bounce = parsed.records[1].values
    assert bounce["status"] == "bounced"
    assert bounce["error_code"] == "5.1.1"
    assert "Recipient address rejected" in bounce["error_message"]


def test_sendgrid_bounce_falls_back_to_its_classification_when_the_status_is_generic():
    source = make_source("sendgrid")
    event = fixture_json("sendgrid", "02_bounce_hard_invalid_address.json")[1]
    event.update(status="5.0.0", bounce_classification="Reputation", type="blocked")
    values = only(parse(source, [event]))
    assert values["error_code"] == "Reputation"
    assert values["status"] == "failed"  # blocked: the sender's reputation, not the address


def test_sendgrid_drop_for_an_opt_out_is_a_suppression():
    source = make_source("sendgrid")
    values = only(parse(source, fixture_bytes("sendgrid", "04_dropped_unsubscribed.json")))
    assert values["status"] == "suppressed"
    assert values["error_code"] == "Unsubscribed Address"


def test_sendgrid_drop_of_an_invalid_address_without_custom_args_is_a_failure():
    source = make_source("sendgrid")
    values = only(parse(source, fixture_bytes("sendgrid", "10_dropped_invalid_no_identity.json")))
    assert values["status"] == "failed"
    assert values["error_code"] == "Invalid"
    assert values["customer_id"] == ""
    assert values["notification_key"] == ""  # the provider message id identifies it
    assert values["provider_message_id"] == "CsQS355kVNa2XzMGqymgfM"
    assert values["purpose"] == "legacy-bulk-script"


def test_sendgrid_event_keeps_its_id_when_a_retried_batch_gives_it_a_new_sg_event_id():
    source = make_source("sendgrid")
    first = parse(source, fixture_bytes("sendgrid", "08a_first_post.json")).records[1]
    retried = fixture_json("sendgrid", "08b_retried_post_with_duplicate.json")
    retried[0]["sg_event_id"] = "a-new-id-on-the-retry"
    again = parse(source, retried).records
    assert again[0].values["event_id"] == first.values["event_id"]
    assert again[1].values["status"] == "opened"
    assert again[1].values["event_id"] != first.values["event_id"]


@pytest.mark.parametrize(
    "event", ["unsubscribe", "group_unsubscribe", "group_resubscribe", "x_new"]
)
def test_sendgrid_opt_outs_and_unknown_event_types_are_ignored_with_a_reason(event):
    source = make_source("sendgrid")
    item = {**fixture_json("sendgrid", "04_dropped_unsubscribed.json")[0], "event": event}
    parsed = parse(source, [item])
    assert parsed.records == [] and parsed.problems == []
    assert parsed.ignored and parsed.ignored[0].startswith(f"SendGrid {event!r} event: ")


def test_sendgrid_body_that_is_not_an_event_batch_is_a_problem():
    source = make_source("sendgrid")
    parsed = parse(source, b"{not json")
    assert parsed.records == []
    assert parsed.problems[0]["field"] is None
    assert "SendGrid" in parsed.problems[0]["message"]


def test_sendgrid_signed_event_webhook_is_checked_with_the_verification_key():
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    source = make_source("sendgrid", basic=None, signing_key=b64encode(public).decode())
    body = fixture_bytes("sendgrid", "08a_first_post.json")
    stamp = "1741960930"
    signature = b64encode(private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": signature,
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": stamp,
    }
    adapter = adapter_for("sendgrid")
    adapter.authenticate(source, request_for(body, auth=None, **headers))
    tampered = body.replace(b"delivered", b"bounce")
    with pytest.raises(Rejected) as refused:
        adapter.authenticate(source, request_for(tampered, auth=None, **headers))
    assert (refused.value.status, refused.value.reason) == (403, "signature mismatch")


# --- Postmark ---


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("01_delivery.json", "delivered", ""),
        ("02_bounce_hard_1.json", "bounced", "1"),
        ("03_bounce_soft_4096.json", "bounced", "4096"),
        ("04_bounce_transient_2.json", "deferred", "2"),
        ("11_spam_complaint.json", "complained", "100001"),
    ],
)
def test_postmark_reads_record_types_and_bounce_type_codes(name, status, code):
    source = make_source("postmark")
    values = only(parse(source, fixture_bytes("postmark", name)))
    expected = fixture_json("postmark", name)
    assert values["status"] == status
    assert values["error_code"] == code
    assert values["provider_message_id"] == expected["MessageID"]
    assert values["customer_id"] == expected["Metadata"]["customer_id"]
    assert values["notification_key"] == expected["Metadata"]["notif_id"] + ":email"
    assert values["purpose"] == expected["Tag"]
    assert values["refs"] == {"ticket_id": expected["Metadata"]["ticket_id"]}


def test_postmark_bounce_keeps_the_smtp_details_and_its_bounce_id():
    source = make_source("postmark")
    values = only(parse(source, fixture_bytes("postmark", "02_bounce_hard_1.json")))
    assert values["error_message"].startswith("smtp;550 5.1.1")
    assert values["event_id"] == "Bounce:3816334336"
    assert values["occurred_at"] == "2025-03-14T15:00:04+00:00"


def test_postmark_subscription_change_is_recognised_but_not_an_outcome():
    source = make_source("postmark")
    parsed = parse(source, fixture_bytes("postmark", "12_subscription_change_unsubscribe.json"))
    assert parsed.records == [] and parsed.problems == []
    assert "subscription change" in parsed.ignored[0]
    assert "ManualSuppression" in parsed.ignored[0]


@pytest.mark.parametrize(
    "type_name, type_code, status",
    [
        ("SpamNotification", 512, "failed"),
        ("ManuallyDeactivated", 100002, "suppressed"),
        ("BadEmailAddress", 100000, "failed"),
        # Postmark stopped trying: a refusal, and not the address's fault.
        ("DnsError", 256, "failed"),
        # Unclassified by Postmark, but the text's "5.1.1" says the mailbox does not exist.
        ("Unknown", 2048, "bounced"),
    ],
)
def test_postmark_bounce_types_anymail_reads_loosely_are_refined(type_name, type_code, status):
    source = make_source("postmark")
    body = {**fixture_json("postmark", "02_bounce_hard_1.json"), "Type": type_name}
    body["TypeCode"] = type_code
    values = only(parse(source, body))
    assert (values["status"], values["error_code"]) == (status, str(type_code))


@pytest.mark.parametrize("type_name, type_code", [("AutoResponder", 64), ("OpenRelayTest", 1024)])
def test_postmark_auto_replies_and_relay_tests_are_ignored(type_name, type_code):
    source = make_source("postmark")
    body = {**fixture_json("postmark", "02_bounce_hard_1.json"), "Type": type_name}
    body["TypeCode"] = type_code
    parsed = parse(source, body)
    assert parsed.records == []
    assert parsed.ignored[0].startswith(f"Postmark {type_name!r} bounce record")


def test_postmark_inbound_body_sent_to_the_tracking_url_is_a_readable_problem():
    source = make_source("postmark")
    parsed = parse(source, {"FromFull": {"Email": "a@example.com"}, "Subject": "hi"})
    assert "inbound" in parsed.problems[0]["message"]


# --- Mailgun ---


def mailgun_signed_now(body: dict) -> dict:
    """The sample signed as Mailgun would sign it now (calls signed long ago are refused)."""
    stamp, token = str(int(datetime.now(UTC).timestamp())), "f" * 50
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    return {
        **body,
        "signature": {"timestamp": stamp, "token": token, "signature": signature.hexdigest()},
    }


def test_mailgun_checks_the_signature_with_the_signing_key():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    adapter = adapter_for("mailgun")
    delivered = mailgun_signed_now(fixture_json("mailgun", "01_delivered.json"))
    adapter.authenticate(source, request_for(delivered))
    with pytest.raises(Rejected) as refused:
        adapter.authenticate(source, request_for(fixture_bytes("mailgun", "13_bad_signature.json")))
    assert (refused.value.status, refused.value.reason) == (403, "signature mismatch")


def test_mailgun_body_without_a_signature_is_refused_not_quarantined():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    with pytest.raises(Rejected) as refused:
        adapter_for("mailgun").authenticate(source, request_for(b"garbage", auth=None))
    assert refused.value.status == 403


def test_mailgun_delivered_keeps_the_bracketed_message_id_and_the_raw_event():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    parsed = parse(source, fixture_bytes("mailgun", "01_delivered.json"))
    values = only(parsed)
    assert values["status"] == "delivered"
    assert (
        values["provider_message_id"] == "<20250314100000.84dc420e7ff0e4e9@mg.harborpine.example>"
    )
    assert values["notification_key"] == "ntf_9C0D11:email"
    assert values["customer_id"] == "cus_11402"
    assert values["refs"] == {"order_id": "ORD-2025-118905"}
    assert values["purpose"] == "order_confirmation"
    assert values["attempt"] == 1
    assert values["event_id"] == "Ynt5b_IwGKt_ik0i1HpKwA:1741946403.0"
    assert parsed.records[0].raw["event-data"]["delivery-status"]["code"] == 250


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("02_failed_permanent_user_unknown.json", "bounced", "5.1.1"),
        ("03_failed_temporary_mailbox_full.json", "deferred", "4.2.2"),
        ("08_failed_permanent_suppress_unsubscribe_606.json", "suppressed", "suppress-unsubscribe"),
        ("12_complained.json", "complained", "complained"),
    ],
)
def test_mailgun_failures_are_read_from_severity_reason_and_delivery_status(name, status, code):
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    values = only(parse(source, fixture_bytes("mailgun", name)))
    assert (values["status"], values["error_code"]) == (status, code)


def test_mailgun_suppression_without_smtp_text_keeps_the_description():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    name = "08_failed_permanent_suppress_unsubscribe_606.json"
    values = only(parse(source, fixture_bytes("mailgun", name)))
    assert values["error_message"] == "Not delivering to unsubscribed address"


def test_mailgun_exact_repost_has_the_same_event_id():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    first = only(parse(source, fixture_bytes("mailgun", "01_delivered.json")))
    again = only(parse(source, fixture_bytes("mailgun", "14_delivered_duplicate_retry.json")))
    assert again["event_id"] == first["event_id"]


def test_mailgun_unsubscribe_is_ignored():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    body = fixture_json("mailgun", "12_complained.json")
    body["event-data"]["event"] = "unsubscribed"
    parsed = parse(source, body)
    assert parsed.records == []
    assert parsed.ignored == [
        "Mailgun 'unsubscribed' event: an opt-out from future messages, not a delivery outcome"
    ]


def test_mailgun_legacy_form_post_is_checked_and_read():
    source = make_source("mailgun", basic=None, signing_key=MAILGUN_KEY)
    stamp = str(int(datetime.now(UTC).timestamp()))
    token = "a16aa1be57ba803eb6e4b477f9cf70031b3427648e29157aac"
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    fields = {
        "event": "bounced",
        "recipient": "chloe.martin@example.com",
        "Message-Id": "<20250314102000.62d5e1a3250080f6@mg.harborpine.example>",
        "code": "550",
        "error": "5.1.1 The email account that you tried to reach does not exist",
        "timestamp": stamp,
        "token": token,
        "signature": signature.hexdigest(),
    }
    body = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()
    adapter_for("mailgun").authenticate(source, request_for(body, FORM, auth=None))
    parsed = parse(source, body, FORM)
    values = only(parsed)
    assert (values["status"], values["error_code"]) == ("bounced", "550")
    assert values["provider_message_id"] == fields["Message-Id"]
    assert values["event_id"] == token
    assert parsed.records[0].raw["code"] == "550"  # plain JSON, not a QueryDict


# --- Amazon SES through SNS ---


def test_sns_string_to_sign_follows_amazons_field_order():
    message = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:t",
        "Message": "hello",
        "Timestamp": "2025-03-14T10:00:00.000Z",
        "SignatureVersion": "1",
    }
    assert sns_string_to_sign(message) == (
        b"Message\nhello\nMessageId\nm-1\nTimestamp\n2025-03-14T10:00:00.000Z\n"
        b"TopicArn\narn:t\nType\nNotification\n"
    )
    with_subject = sns_string_to_sign({**message, "Subject": "s"})
    assert b"MessageId\nm-1\nSubject\ns\nTimestamp\n" in with_subject
    confirmation = sns_string_to_sign(
        {**message, "Type": "SubscriptionConfirmation", "SubscribeURL": "u", "Token": "t"}
    )
    assert confirmation.endswith(
        b"SubscribeURL\nu\nTimestamp\n2025-03-14T10:00:00.000Z\nToken\nt\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n"
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_accepts_a_message_amazon_signed(version, sns_certificates):
    source = make_source("ses")
    message = sign_sns(fixture_json("ses", "01_delivery.json"), version)
    adapter_for("ses").authenticate(source, request_for(message, SNS_TEXT, **sns_headers(message)))
    assert sns_certificates == [SNS_CERT_URL]


def test_ses_downloads_each_signing_certificate_once(sns_certificates):
    source = make_source("ses")
    for name in ("01_delivery.json", "02_bounce_permanent_general.json"):
        message = sign_sns(fixture_json("ses", name))
        adapter_for("ses").authenticate(
            source, request_for(message, SNS_TEXT, **sns_headers(message))
        )
    assert sns_certificates == [SNS_CERT_URL]


def test_ses_refuses_the_samples_placeholder_signature():
    source = make_source("ses")
    message = fixture_json("ses", "01_delivery.json")
    with pytest.raises(Rejected) as refused:
        adapter_for("ses").authenticate(
            source, request_for(message, SNS_TEXT, **sns_headers(message))
        )
    assert (refused.value.status, refused.value.reason) == (403, "signature mismatch")


def test_ses_refuses_a_message_signed_by_someone_else():
    other_key, _ = make_sns_signer()
    source = make_source("ses")
    message = sign_sns(fixture_json("ses", "01_delivery.json"), key=other_key)
    with pytest.raises(Rejected) as refused:
        adapter_for("ses").authenticate(
            source, request_for(message, SNS_TEXT, **sns_headers(message))
        )
    assert refused.value.reason == "signature mismatch"


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
        "https://attacker.example/sns.us-east-1.amazonaws.com/cert.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-0.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://s3.amazonaws.com/sns/SimpleNotificationService-0.pem",
    ],
)
def test_ses_never_fetches_a_signing_certificate_from_another_host(url, sns_certificates):
    source = make_source("ses")
    message = {**sign_sns(fixture_json("ses", "01_delivery.json")), "SigningCertURL": url}
    with pytest.raises(Rejected) as refused:
        adapter_for("ses").authenticate(
            source, request_for(message, SNS_TEXT, **sns_headers(message))
        )
    assert refused.value.status == 403
    assert "not on an Amazon SNS host" in refused.value.reason
    assert sns_certificates == []


def test_ses_refuses_sns_headers_that_do_not_match_the_body():
    source = make_source("ses")
    message = sign_sns(fixture_json("ses", "01_delivery.json"))
    headers = {**sns_headers(message), "HTTP_X_AMZ_SNS_MESSAGE_ID": "another-id"}
    with pytest.raises(Rejected) as refused:
        adapter_for("ses").authenticate(source, request_for(message, SNS_TEXT, **headers))
    assert refused.value.status == 403


def test_ses_needs_basic_auth_as_well_as_amazons_signature():
    """Anyone can point an SNS topic of theirs at us: the signature alone proves nothing."""
    source = make_source("ses")
    message = sign_sns(fixture_json("ses", "01_delivery.json"))
    with pytest.raises(BasicAuthChallenge):
        adapter_for("ses").authenticate(
            source, request_for(message, SNS_TEXT, auth=None, **sns_headers(message))
        )


def test_ses_lets_an_authenticated_but_unreadable_body_through_to_be_quarantined():
    source = make_source("ses")
    adapter = adapter_for("ses")
    adapter.authenticate(source, request_for(b"not json", SNS_TEXT))
    parsed = adapter.parse(source, raw_of(source, b"not json", SNS_TEXT))
    assert parsed.problems and parsed.problems[0]["field"] is None


def test_ses_json_that_is_not_an_sns_message_is_a_problem():
    source = make_source("ses")
    parsed = parse(source, {"notificationType": "Bounce"}, SNS_TEXT)
    assert parsed.records == []
    assert "not an Amazon SNS message" in parsed.problems[0]["message"]


def test_ses_subscription_confirmation_shows_the_link_to_open():
    source = make_source("ses")
    body = fixture_json("ses", "00_sns_subscription_confirmation.json")
    parsed = parse(source, body, SNS_TEXT)
    assert parsed.records == [] and parsed.problems == []
    assert parsed.ignored == [
        f"SNS subscription confirmation for {body['TopicArn']}: open {body['SubscribeURL']} "
        "to confirm"
    ]


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("01_delivery.json", "delivered", ""),
        ("02_bounce_permanent_general.json", "bounced", "Permanent/General"),
        ("05_bounce_transient_mailbox_full.json", "bounced", "Transient/MailboxFull"),
        ("09_complaint_abuse.json", "complained", "abuse"),
    ],
)
def test_ses_reads_the_inner_message_of_each_notification(name, status, code):
    source = make_source("ses")
    envelope = fixture_json("ses", name)
    inner = json.loads(envelope["Message"])
    values = only(parse(source, fixture_bytes("ses", name), SNS_TEXT))
    assert (values["status"], values["error_code"]) == (status, code)
    assert values["provider"] == "ses"
    assert values["provider_message_id"] == inner["mail"]["messageId"]
    assert values["event_id"] == envelope["MessageId"]
    assert values["customer_id"] == inner["mail"]["tags"]["customer_id"][0]
    assert values["notification_key"] == inner["mail"]["tags"]["notif_id"][0] + ":email"
    assert values["purpose"] == inner["mail"]["tags"]["template"][0]
    detail = inner[inner["notificationType"].lower()]
    assert values["occurred_at"] == detail["timestamp"]  # the event's own time, not SNS's


def test_ses_bounce_keeps_the_diagnostic_code():
    source = make_source("ses")
    values = only(parse(source, fixture_bytes("ses", "02_bounce_permanent_general.json")))
    assert values["error_message"] == "smtp; 550 Requested action not taken: mailbox unavailable"
    assert values["refs"] == {"order_id": "ORD-2025-118955"}


def test_ses_gives_each_bounced_recipient_its_own_outcome():
    source = make_source("ses")
    inner = json.loads(fixture_json("ses", "02_bounce_permanent_general.json")["Message"])
    inner["mail"]["destination"] = ["a@example.net", "b@example.net"]
    inner["bounce"]["bouncedRecipients"] = [
        {"emailAddress": "a@example.net", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"},
        {"emailAddress": "b@example.net", "status": "5.2.2", "diagnosticCode": "smtp; 552 5.2.2"},
    ]
    parsed = parse(source, ses_message(inner, MessageId="sns-2"), SNS_TEXT)
    values = [r.values for r in parsed.records]
    assert [v["recipient"] for v in values] == ["a@example.net", "b@example.net"]
    assert [v["event_id"] for v in values] == ["sns-2:a@example.net", "sns-2:b@example.net"]
    # One notif_id cannot name two recipients' notifications: message id + recipient do.
    assert {v["notification_key"] for v in values} == {""}


def test_ses_suppression_list_bounce_is_a_suppression():
    source = make_source("ses")
    inner = json.loads(fixture_json("ses", "02_bounce_permanent_general.json")["Message"])
    inner["bounce"]["bounceSubType"] = "OnAccountSuppressionList"
    values = only(parse(source, ses_message(inner), SNS_TEXT))
    assert (values["status"], values["error_code"]) == (
        "suppressed",
        "Permanent/OnAccountSuppressionList",
    )


def test_ses_delivery_delay_is_a_deferral_of_the_delayed_recipients():
    source = make_source("ses")
    inner = json.loads(fixture_json("ses", "01_delivery.json")["Message"])
    del inner["notificationType"], inner["delivery"]
    inner["eventType"] = "DeliveryDelay"
    inner["mail"]["destination"] = ["jonas.berg@example.org", "other@example.org"]
    inner["deliveryDelay"] = {
        "timestamp": "2025-03-14T08:20:00.000Z",
        "delayType": "MailboxFull",
        "expirationTime": "2025-03-15T08:15:00.000Z",
        "delayedRecipients": [
            {
                "emailAddress": "jonas.berg@example.org",
                "status": "4.2.2",
                "diagnosticCode": "smtp; 452 4.2.2 Mailbox full",
            }
        ],
    }
    values = only(parse(source, ses_message(inner), SNS_TEXT))
    assert values["status"] == "deferred"
    assert values["error_code"] == "MailboxFull"
    assert values["error_message"] == "smtp; 452 4.2.2 Mailbox full"
    assert values["occurred_at"] == "2025-03-14T08:20:00.000Z"


def test_ses_unknown_event_type_is_ignored():
    source = make_source("ses")
    inner = json.loads(fixture_json("ses", "01_delivery.json")["Message"])
    inner["notificationType"] = "Teleported"
    parsed = parse(source, ses_message(inner), SNS_TEXT)
    assert parsed.records == []
    assert parsed.ignored == [
        "Amazon SES 'Teleported' event: an event type notifwatch does not record"
    ]


def test_ses_subscription_preference_change_is_ignored_as_not_an_outcome():
    source = make_source("ses")
    inner = json.loads(fixture_json("ses", "01_delivery.json")["Message"])
    del inner["notificationType"], inner["delivery"]
    inner["eventType"] = "Subscription"
    inner["subscription"] = {"contactList": "news", "timestamp": "2025-03-14T09:00:00.000Z"}
    parsed = parse(source, ses_message(inner), SNS_TEXT)
    assert parsed.records == []
    assert parsed.ignored == [
        "Amazon SES 'Subscription' event: a change of the customer's subscription preferences, "
        "not a delivery outcome"
    ]


def test_ses_topic_test_message_is_ignored():
    source = make_source("ses")
    body = {**ses_message({}), "Message": email.SES_TEST_MESSAGE}
    parsed = parse(source, body, SNS_TEXT)
    assert parsed.records == [] and "topic works" in parsed.ignored[0]


def test_ses_confirms_a_subscription_only_when_the_setting_says_so(settings, monkeypatch):
    source = make_source("ses")
    body = fixture_json("ses", "00_sns_subscription_confirmation.json")
    opened: list[str] = []

    class Answer:
        def raise_for_status(self):
            pass

    monkeypatch.setattr(email.requests, "get", lambda url, **kw: opened.append(url) or Answer())
    raw = raw_of(source, body, SNS_TEXT)
    assert adapter_for("ses").reply(source, raw) is None
    assert opened == []

    settings.NOTIFWATCH_SNS_AUTO_CONFIRM = True
    adapter_for("ses").reply(source, raw)
    assert opened == [body["SubscribeURL"]]
    assert "opens it automatically" in adapter_for("ses").parse(source, raw).ignored[0]


def test_ses_never_opens_a_subscribe_link_outside_amazon(settings, monkeypatch):
    settings.NOTIFWATCH_SNS_AUTO_CONFIRM = True
    source = make_source("ses")
    body = {
        **fixture_json("ses", "00_sns_subscription_confirmation.json"),
        "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription",
    }
    monkeypatch.setattr(email.requests, "get", lambda *a, **kw: pytest.fail("fetched"))
    assert adapter_for("ses").reply(source, raw_of(source, body, SNS_TEXT)) is None


# --- the other providers anymail tracks ---


def test_brevo_reads_its_custom_header_metadata_and_blocks():
    source = make_source("brevo")
    event = {
        "event": "hard_bounce",
        "email": "a@example.com",
        "id": 1,
        "ts_epoch": 1741946403000,
        "message-id": "<202503141000.1@smtp-relay.mailin.fr>",
        "reason": "550 5.1.1 user unknown",
        "tags": ["order_confirmation"],
        "X-Mailin-custom": json.dumps({"customer_id": "cus_1", "notif_id": "ntf_B1"}),
    }
    values = only(parse(source, event))
    assert values["status"] == "bounced"
    assert values["provider_message_id"] == "<202503141000.1@smtp-relay.mailin.fr>"
    assert values["customer_id"] == "cus_1"
    assert values["notification_key"] == "ntf_B1:email"
    assert values["error_message"] == "550 5.1.1 user unknown"
    assert values["event_id"].startswith("brevo:")
    assert only(parse(source, {**event, "event": "blocked"}))["status"] == "suppressed"


def test_mailersend_checks_its_signature_and_reads_activities():
    secret = "mailersend-test-signing-secret"
    source = make_source("mailersend", basic=None, signing_key=secret)
    body = json.dumps(
        {
            "type": "activity.hard_bounced",
            "data": {
                "id": "act_1",
                "type": "hard_bounced",
                "created_at": "2025-03-14T10:00:03.000000Z",
                "email": {
                    "message": {"id": "msg_1"},
                    "recipient": {"email": "a@example.com"},
                    "tags": ["order_confirmation"],
                },
                "morph": {"object": "recipient_bounce", "reason": "Host or domain name not found"},
            },
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    adapter = adapter_for("mailersend")
    adapter.authenticate(source, request_for(body, auth=None, HTTP_SIGNATURE=signature))
    with pytest.raises(Rejected):
        adapter.authenticate(source, request_for(body, auth=None, HTTP_SIGNATURE="0" * 64))
    values = only(parse(source, body))
    assert (values["status"], values["provider_message_id"]) == ("bounced", "msg_1")
    assert values["event_id"] == "act_1"
    assert values["error_code"] == "Host or domain name not found"


def test_mailjet_blocked_for_an_earlier_bounce_is_a_suppression():
    source = make_source("mailjet")
    event = {
        "event": "blocked",
        "time": 1741946403,
        "MessageID": 19421777396190490,
        "email": "a@example.com",
        "error_related_to": "recipient",
        "error": "preblocked",
        "Payload": json.dumps({"customer_id": "cus_1"}),
    }
    values = only(parse(source, [event]))
    assert (values["status"], values["error_code"]) == ("suppressed", "preblocked")
    assert values["provider_message_id"] == "19421777396190490"
    values = only(parse(source, {**event, "error": "content blocked"}))  # a bare event
    assert values["status"] == "failed"


def test_mailtrap_checks_its_signature_and_reads_rejects_as_suppressions():
    secret = "mailtrap-test-signing-secret"
    source = make_source("mailtrap", basic=None, signing_key=secret)
    body = json.dumps(
        {
            "events": [
                {
                    "event": "reject",
                    "message_id": "mt-1",
                    "sending_stream": "transactional",
                    "email": "a@example.com",
                    "timestamp": 1741946403,
                    "event_id": "ev-1",
                    "reason": "unsubscribed",
                    "custom_variables": {"customer_id": "cus_1", "template": "receipt"},
                }
            ]
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    adapter = adapter_for("mailtrap")
    adapter.authenticate(source, request_for(body, auth=None, HTTP_MAILTRAP_SIGNATURE=signature))
    with pytest.raises(Rejected):
        adapter.authenticate(source, request_for(body, auth=None, HTTP_MAILTRAP_SIGNATURE="00"))
    values = only(parse(source, body))
    assert (values["status"], values["event_id"], values["purpose"]) == (
        "suppressed",
        "ev-1",
        "receipt",
    )


def test_mandrill_checks_the_signature_over_the_public_url(settings):
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example.com"
    key = "mandrill-test-webhook-key"
    source = make_source("mandrill", basic=None, signing_key=key)
    events = [
        {
            "event": "hard_bounce",
            "_id": "md-1",
            "ts": 1741946403,
            "msg": {
                "email": "a@example.com",
                "bounce_description": "bad_mailbox",
                "diag": "smtp;550 5.1.1 user unknown",
                "metadata": {"customer_id": "cus_1"},
                "tags": ["order_confirmation"],
            },
        }
    ]
    field = json.dumps(events)
    signed = public_webhook_url(source) + "mandrill_events" + field
    signature = b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    body = f"mandrill_events={quote(field)}".encode()
    adapter = adapter_for("mandrill")
    adapter.authenticate(
        source, request_for(body, FORM, auth=None, HTTP_X_MANDRILL_SIGNATURE=signature)
    )
    with pytest.raises(Rejected):
        adapter.authenticate(
            source, request_for(body, FORM, auth=None, HTTP_X_MANDRILL_SIGNATURE="bad")
        )
    values = only(parse(source, body, FORM))
    assert (values["status"], values["error_code"]) == ("bounced", "bad_mailbox")
    assert values["provider_message_id"] == "md-1"
    events[0]["event"] = "reject"
    body = f"mandrill_events={quote(json.dumps(events))}"
    assert only(parse(source, body.encode(), FORM))["status"] == "suppressed"


def test_postal_checks_its_rsa_signature_and_reads_hard_fails_as_bounces():
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    source = make_source("postal", basic=None, signing_key=b64encode(public).decode())
    body = json.dumps(
        {
            "event": "MessageDeliveryFailed",
            "timestamp": 1741946403.0,
            "uuid": "pu-1",
            "payload": {
                "status": "HardFail",
                "details": "Permanent failure",
                "output": "550 5.1.1 User unknown",
                "message": {
                    "id": 1234,
                    "direction": "outgoing",
                    "to": "a@example.com",
                    "tag": "order_confirmation",
                },
            },
        }
    ).encode()
    signature = b64encode(private.sign(body, padding.PKCS1v15(), hashes.SHA1())).decode()
    adapter = adapter_for("postal")
    adapter.authenticate(source, request_for(body, auth=None, HTTP_X_POSTAL_SIGNATURE=signature))
    with pytest.raises(Rejected):
        adapter.authenticate(
            source, request_for(body + b" ", auth=None, HTTP_X_POSTAL_SIGNATURE=signature)
        )
    values = only(parse(source, body))
    assert (values["status"], values["error_code"], values["provider_message_id"]) == (
        "bounced",
        "HardFail",
        "1234",
    )
    assert values["error_message"] == "550 5.1.1 User unknown"


def test_resend_reads_bounces_and_needs_svix_for_its_signature():
    source = make_source("resend")
    event = {
        "type": "email.bounced",
        "created_at": "2025-03-14T10:00:03.000Z",
        "data": {
            "email_id": "re-1",
            "to": ["a@example.com"],
            "bounce": {
                "message": "Resend has suppressed sending to this address.",
                "type": "Permanent",
                "subType": "Suppressed",
            },
        },
    }
    values = only(parse(source, event, headers={"svix-id": "msg_2x"}))
    assert (values["status"], values["error_code"]) == ("suppressed", "Permanent/Suppressed")
    assert values["event_id"] == "msg_2x"
    adapter_for("resend").authenticate(source, request_for(event))
    signed = make_source("resend", basic=None, signing_key="whsec_dGVzdA==", slug="signed")
    with pytest.raises(Rejected) as refused:
        adapter_for("resend").authenticate(signed, request_for(event, auth=None))
    assert refused.value.status == 503  # svix is not installed: a setup problem of ours


def test_sparkpost_reads_bounce_classes_and_skips_pings():
    source = make_source("sparkpost")
    batch = [
        {
            "msys": {
                "message_event": {
                    "type": "bounce",
                    "bounce_class": "10",
                    "event_id": "sp-1",
                    "timestamp": "1741946403",
                    "transmission_id": "tr-1",
                    "raw_rcpt_to": "a@example.com",
                    "raw_reason": "550 5.1.1 user unknown",
                    "rcpt_meta": {"customer_id": "cus_1", "notif_id": "ntf_S1"},
                }
            }
        },
        {"msys": {}},
    ]
    values = only(parse(source, batch))
    assert (values["status"], values["error_code"], values["event_id"]) == ("bounced", "10", "sp-1")
    assert values["notification_key"] == "ntf_S1:email"
    assert parse(source, [{"msys": {}}]).ignored == [
        "SparkPost call with no events (a test or ping)"
    ]


def test_unisender_go_checks_its_md5_signature_with_the_api_key():
    api_key = "unisender-test-api-key"
    source = make_source("unisender_go", basic=None, signing_key=api_key)
    payload = {
        "auth": api_key,
        "events_by_user": [
            {
                "user_id": 1,
                "project_id": "p1",
                "events": [
                    {
                        "event_name": "transactional_email_status",
                        "event_data": {
                            "job_id": "job-1",
                            "metadata": {"customer_id": "cus_1"},
                            "email": "a@example.com",
                            "status": "hard_bounced",
                            "event_time": "2025-03-14 10:00:03",
                            "delivery_info": {
                                "delivery_status": "err_unsubscribed",
                                "destination_response": "",
                            },
                        },
                    }
                ],
            }
        ],
    }
    unsigned = json.dumps(payload).encode()
    auth = hashlib.md5(unsigned).hexdigest()
    body = unsigned.replace(api_key.encode(), auth.encode())
    adapter = adapter_for("unisender_go")
    adapter.authenticate(source, request_for(body, auth=None))
    with pytest.raises(Rejected):
        adapter.authenticate(source, request_for(unsigned, auth=None))
    values = only(parse(source, body))
    assert (values["status"], values["error_code"]) == ("suppressed", "err_unsubscribed")
    assert values["provider_message_id"] == "job-1"
