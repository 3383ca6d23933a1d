"""Email provider webhooks through the real endpoint, POST /hooks/<slug>/, with every sample.

Each sample is delivered the way its provider delivers it (SendGrid and Postmark with basic auth
in the URL, Mailgun signed with its signing key, SES through SNS with basic auth and a message
signature), after the in-house send records that name the samples' provider message ids.
"""

import hashlib
import hmac
import json
import re
import secrets
import time
from base64 import b64encode
from pathlib import Path
from urllib.parse import urlencode

import pytest

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.models import Outcome, RawEvent
from notifwatch.ingest.providers import email
from tests.providers.test_email_adapters import SNS_CERT_PEM, sign_sns, sns_headers

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SEND_RECORDS = FIXTURES / "inhouse" / "07_send_records_for_provider_samples.jsonl"
BASIC = "hooks:s3cret-pass"
MAILGUN_KEY = "notifwatch-test-mailgun-signing-key"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
SNS_TEXT = "text/plain; charset=UTF-8"
PROVIDERS = ("sendgrid", "postmark", "mailgun", "ses")
# Samples that only make sense after another one (a retry of it).
AFTER = {
    "sendgrid/08b_retried_post_with_duplicate.json": ["08a_first_post.json"],
    "mailgun/14_delivered_duplicate_retry.json": ["01_delivered.json"],
}


def expected_files() -> list[tuple[str, dict]]:
    cases = []
    for provider in PROVIDERS:
        spec = json.loads((FIXTURES / provider / "expected.json").read_text())
        cases += [(provider, case) for case in spec["files"]]
    return cases


CASES = expected_files()


@pytest.fixture(autouse=True)
def sns_certificates(monkeypatch):
    email.sns_public_key.cache_clear()
    monkeypatch.setattr(email, "fetch_certificate", lambda url: SNS_CERT_PEM)
    yield
    email.sns_public_key.cache_clear()


@pytest.fixture
def send_records(inhouse_source):
    from notifwatch.ingest.importer import import_path

    import_path(inhouse_source, str(SEND_RECORDS))
    return inhouse_source


@pytest.fixture
def sources(db) -> dict:
    from notifwatch.ingest.actions import save_source

    return {
        provider: save_source(
            slug=f"{provider}-mail",
            kind=provider,
            secret=MAILGUN_KEY if provider == "mailgun" else BASIC,
        ).source
        for provider in PROVIDERS
    }


def basic_auth(secret: str) -> str:
    return "Basic " + b64encode(secret.encode()).decode()


def mailgun_signature(stamp: str, token: str, key: str = MAILGUN_KEY) -> str:
    return hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()


def signed_by_mailgun(body: dict, *, age: float = 0, token: str | None = None) -> dict:
    """A Mailgun sample as Mailgun would send it `age` seconds ago: its own timestamp and
    one-time token, signed; a forged sample (its signature never matched) stays forged."""
    sample_block = body["signature"]
    genuine = sample_block["signature"] == mailgun_signature(
        sample_block["timestamp"], sample_block["token"]
    )
    stamp = str(int(time.time() - age))
    token = token or secrets.token_hex(25)
    signature = mailgun_signature(stamp, token) if genuine else sample_block["signature"]
    return {**body, "signature": {"timestamp": stamp, "token": token, "signature": signature}}


def post(client, source, body, *, auth: str | None = BASIC, sign: bool = True, **headers):
    """POST a body as its provider would: basic auth in the URL, SNS headers and signature
    (Mailgun's signed now, unless `sign` is False: then as it is)."""
    content_type = JSON
    if source.kind == "mailgun" and sign and isinstance(body, dict) and "signature" in body:
        body = signed_by_mailgun(body)
    if source.kind == "ses":
        content_type = SNS_TEXT
        if isinstance(body, dict):
            body = sign_sns(body) if sign else body
            headers = {**sns_headers(body), **headers}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    if auth and source.kind != "mailgun":
        headers["HTTP_AUTHORIZATION"] = basic_auth(auth)
    return client.post(f"/hooks/{source.slug}/", data=body, content_type=content_type, **headers)


def sample(provider: str, name: str):
    return json.loads((FIXTURES / provider / name).read_text())


def deliver(client, sources, provider: str, name: str, **kwargs):
    return post(client, sources[provider], sample(provider, name), **kwargs)


def last_raw(source) -> RawEvent:
    return RawEvent.objects.filter(source=source).latest("id")


@pytest.mark.parametrize("provider, case", CASES, ids=[f"{p}/{c['file']}" for p, c in CASES])
def test_every_sample_gives_its_expected_outcome(client, sources, send_records, provider, case):
    for earlier in AFTER.get(f"{provider}/{case['file']}", []):
        assert deliver(client, sources, provider, earlier).status_code == 200

    response = deliver(client, sources, provider, case["file"])

    source = sources[provider]
    raw = last_raw(source)
    for expected in case["expected"]:
        check_outcome(response, source, raw, provider, expected)


def notification_for(expected: dict) -> Notification:
    """The notification an expectation is about: one provider message can go to several
    recipients, each with its own outcome."""
    notifications = Notification.objects.filter(provider_message_id=expected["message_key"])
    if expected["recipient"] and notifications.count() > 1:
        notifications = notifications.filter(recipient=expected["recipient"])
    return notifications.get()


def check_outcome(response, source, raw: RawEvent, provider: str, expected: dict) -> None:
    if expected["final_status"] == "rejected_payload":
        assert response.status_code == 403
        assert (raw.outcome, raw.reason) == (Outcome.REJECTED, "signature mismatch")
        assert not DeliveryEvent.objects.filter(source=source).exists()
        return
    assert response.status_code == 200, response.content
    if expected["final_status"] == "not_applicable":
        assert raw.outcome == Outcome.IGNORED and raw.reason
        assert not DeliveryEvent.objects.filter(source=source).exists()
        if expected["message_key"]:  # the send record stays as it was
            assert notification_for(expected).final_status == "pending"
        return
    assert raw.outcome == (
        Outcome.DUPLICATE if provider == "mailgun" and expected["is_duplicate"] else Outcome.PARSED
    )
    notification = notification_for(expected)
    assert notification.final_status == expected["final_status"]
    assert (notification.reason_category or None) == expected["category"]
    if expected["category"]:
        assert notification.permanent is expected["permanent"]
    assert notification.counts_as_failure is expected["counts_as_failure"]
    assert (notification.duplicate_events > 0) is expected["is_duplicate"]
    assert notification.duplicate_sends == 0
    assert notification.customer_id == (expected["customer_id"] or "")
    assert notification.recipient == expected["recipient"]
    assert bool(notification.identity_problem) is bool(expected["identity_problem"])
    assert notification.channel == "email"
    assert notification.provider == provider


def test_callbacks_join_the_send_record_and_gain_its_customer_and_refs(
    client, sources, send_records
):
    response = deliver(client, sources, "mailgun", "02_failed_permanent_user_unknown.json")
    assert response.status_code == 200
    notification = Notification.objects.get(notification_key="ntf_9C0D12:email")
    assert notification.source == send_records
    assert notification.customer_id == "cus_11690"
    assert notification.refs == {"order_id": "ORD-2025-118910"}
    assert notification.error_code == "5.1.1"
    event = notification.events.get(source=sources["mailgun"])
    assert event.payload["event-data"]["delivery-status"]["code"] == 550  # the raw event, kept


def test_a_callback_that_matches_no_send_record_is_kept_as_an_identity_problem(client, sources):
    deliver(client, sources, "sendgrid", "10_dropped_invalid_no_identity.json")
    notification = Notification.objects.get(provider_message_id="CsQS355kVNa2XzMGqymgfM")
    assert notification.source == sources["sendgrid"]
    assert notification.identity_problem == "unmatched_callback"
    assert notification.final_status == "failed"


# --- forged and unsigned calls ---


def test_forged_mailgun_call_is_refused_counted_and_never_trusted(client, sources, send_records):
    for _ in range(3):
        response = deliver(client, sources, "mailgun", "13_bad_signature.json")
        assert response.status_code == 403
    rejected = RawEvent.objects.filter(source=sources["mailgun"], outcome=Outcome.REJECTED)
    assert rejected.count() == 3
    assert set(rejected.values_list("reason", flat=True)) == {"signature mismatch"}
    sent = Notification.objects.get(notification_key="ntf_9C0D11:email")
    assert sent.final_status == "pending"  # the forged "failed" never reached it


# --- Mailgun replays: the signature covers only a timestamp and a one-time token ---

DAY = 24 * 3600


def rejected_calls(source) -> list[str]:
    return list(
        RawEvent.objects.filter(source=source, outcome=Outcome.REJECTED)
        .order_by("id")
        .values_list("reason", flat=True)
    )


@pytest.mark.parametrize("age", [DAY, 7 * DAY, -DAY], ids=["a day old", "a week old", "ahead"])
def test_a_correctly_signed_mailgun_call_outside_the_window_is_refused_and_counted(
    client, sources, send_records, age
):
    body = signed_by_mailgun(sample("mailgun", "02_failed_permanent_user_unknown.json"), age=age)

    response = post(client, sources["mailgun"], body, sign=False)

    assert response.status_code == 403
    (reason,) = rejected_calls(sources["mailgun"])
    seconds, when = re.match(r"signature timestamp is (\d+) s (old|ahead)", reason).groups()
    assert abs(int(seconds) - abs(age)) <= 2 and when == ("old" if age > 0 else "ahead")
    assert not DeliveryEvent.objects.filter(source=sources["mailgun"]).exists()
    assert Notification.objects.get(notification_key="ntf_9C0D11:email").final_status == "pending"


def test_a_mailgun_call_signed_within_the_window_is_accepted(client, sources, send_records):
    body = signed_by_mailgun(sample("mailgun", "01_delivered.json"), age=10 * 60)
    assert post(client, sources["mailgun"], body, sign=False).status_code == 200
    assert last_raw(sources["mailgun"]).outcome == Outcome.PARSED


def test_the_mailgun_window_is_a_setting(client, sources, send_records, settings):
    settings.NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS = 60
    body = signed_by_mailgun(sample("mailgun", "01_delivered.json"), age=120)
    response = post(client, sources["mailgun"], body, sign=False)
    assert response.status_code == 403
    assert "more than 60 s from now" in rejected_calls(sources["mailgun"])[0]


def test_one_captured_mailgun_signature_carries_one_call_not_three(client, sources, send_records):
    token = secrets.token_hex(25)
    delivered = signed_by_mailgun(sample("mailgun", "01_delivered.json"), token=token)
    captured = delivered["signature"]
    forged = [
        {**sample("mailgun", name), "signature": captured}
        for name in ("02_failed_permanent_user_unknown.json", "12_complained.json")
    ]

    answers = [post(client, sources["mailgun"], body, sign=False) for body in [delivered, *forged]]
    again = post(client, sources["mailgun"], delivered, sign=False)

    # 406: Mailgun does not retry it; the first call with that token was answered already.
    assert [r.status_code for r in [*answers, again]] == [200, 406, 406, 406]
    assert rejected_calls(sources["mailgun"]) == ["signature already used (a replayed call)"] * 3
    notification = Notification.objects.get(notification_key="ntf_9C0D11:email")
    assert notification.events.filter(source=sources["mailgun"]).count() == 1
    assert notification.final_status == "delivered"


def test_a_mailgun_token_is_remembered_per_source(client, sources, send_records):
    from notifwatch.ingest.actions import save_source

    other = save_source(slug="mailgun-eu", kind="mailgun", secret=MAILGUN_KEY).source
    body = signed_by_mailgun(sample("mailgun", "01_delivered.json"))
    assert post(client, sources["mailgun"], body, sign=False).status_code == 200
    assert post(client, other, body, sign=False).status_code == 200


def test_a_replayed_legacy_mailgun_form_post_is_refused(client, sources):
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    fields = {
        "event": "delivered",
        "recipient": "chloe.martin@example.com",
        "Message-Id": "<20250314102000.62d5e1a3250080f6@mg.harborpine.example>",
        "timestamp": stamp,
        "token": token,
        "signature": mailgun_signature(stamp, token),
    }
    url = f"/hooks/{sources['mailgun'].slug}/"
    assert client.post(url, urlencode(fields), content_type=FORM).status_code == 200
    replay = urlencode({**fields, "event": "bounced"})
    assert client.post(url, replay, content_type=FORM).status_code == 406
    assert rejected_calls(sources["mailgun"]) == ["signature already used (a replayed call)"]


def test_a_stored_mailgun_call_is_reprocessed_whatever_its_signature_age(sources, send_records):
    from notifwatch.ingest.processing import process_raw_event, store_raw

    # Authentication happens only while the request is live: a week later, the stored call is
    # read again (after a mapping fix, a crash) without its timestamp being checked.
    body = signed_by_mailgun(sample("mailgun", "01_delivered.json"), age=7 * DAY)
    raw = store_raw(sources["mailgun"], "webhook", json.dumps(body).encode(), content_type=JSON)

    assert process_raw_event(raw).outcome == Outcome.PARSED
    notification = Notification.objects.get(notification_key="ntf_9C0D11:email")
    assert notification.final_status == "delivered"


@pytest.mark.parametrize(
    ("provider", "auth"),
    [
        ("sendgrid", None),
        ("sendgrid", "hooks:wrong-pass"),
        ("postmark", None),
        ("postmark", "hooks:wrong-pass"),
        # SES without credentials is SNS's normal first try (see the handshake test below).
        ("ses", "hooks:wrong-pass"),
    ],
)
def test_missing_or_wrong_basic_auth_is_refused_and_counted(client, sources, provider, auth):
    name = {
        "sendgrid": "02_bounce_hard_invalid_address.json",
        "postmark": "02_bounce_hard_1.json",
        "ses": "02_bounce_permanent_general.json",
    }[provider]
    response = deliver(client, sources, provider, name, auth=auth)
    assert response.status_code == 401
    raw = last_raw(sources[provider])
    assert (raw.outcome, raw.reason) == (
        Outcome.REJECTED,
        "missing or wrong basic-auth credentials",
    )
    assert not Notification.objects.exists()


def test_basic_auth_refusal_asks_for_credentials(client, sources):
    """Amazon SNS sends credentials only after a 401 that names the Basic scheme."""
    before = RawEvent.objects.filter(outcome=Outcome.REJECTED).count()
    response = deliver(client, sources, "ses", "01_delivery.json", auth=None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    # The unchallenged first try is part of the handshake, not a rejected call.
    assert RawEvent.objects.filter(outcome=Outcome.REJECTED).count() == before


def test_ses_message_with_the_samples_placeholder_signature_is_refused(client, sources):
    response = deliver(client, sources, "ses", "01_delivery.json", sign=False)
    assert response.status_code == 403
    assert last_raw(sources["ses"]).reason == "signature mismatch"


def test_ses_certificate_from_another_host_is_refused(client, sources, monkeypatch):
    monkeypatch.setattr(email, "fetch_certificate", lambda url: pytest.fail(f"fetched {url}"))
    message = sign_sns(sample("ses", "01_delivery.json"))
    message["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.attacker.example/c.pem"
    response = post(client, sources["ses"], json.dumps(message).encode(), **sns_headers(message))
    assert response.status_code == 403
    assert "not on an Amazon SNS host" in last_raw(sources["ses"]).reason


# --- unreadable bodies, unknown and non-outcome events ---


def test_authenticated_body_that_cannot_be_read_is_stored_and_quarantined(client, sources):
    response = post(client, sources["sendgrid"], b'[{"event": "delivered",')
    assert response.status_code == 400
    raw = last_raw(sources["sendgrid"])
    assert raw.outcome == Outcome.QUARANTINED
    assert bytes(raw.body) == b'[{"event": "delivered",'
    assert "SendGrid" in raw.reason


def test_unknown_event_type_is_answered_200_and_ignored(client, sources, send_records):
    event = {**sample("sendgrid", "04_dropped_unsubscribed.json")[0], "event": "brand_new_event"}
    response = post(client, sources["sendgrid"], [event])
    assert response.status_code == 200
    raw = last_raw(sources["sendgrid"])
    assert raw.outcome == Outcome.IGNORED
    assert (
        raw.reason == "SendGrid 'brand_new_event' event: an event type notifwatch does not record"
    )


def test_ses_subscription_confirmation_shows_the_admin_the_link(client, sources):
    body = sample("ses", "00_sns_subscription_confirmation.json")
    response = post(client, sources["ses"], body)
    assert response.status_code == 200
    raw = last_raw(sources["ses"])
    assert raw.outcome == Outcome.IGNORED
    assert body["SubscribeURL"] in raw.reason


def test_ses_subscription_is_confirmed_when_the_setting_asks_for_it(
    client, sources, settings, monkeypatch
):
    settings.NOTIFWATCH_SNS_AUTO_CONFIRM = True
    opened: list[str] = []

    class Answer:
        def raise_for_status(self):
            pass

    monkeypatch.setattr(email.requests, "get", lambda url, **kw: opened.append(url) or Answer())
    body = sample("ses", "00_sns_subscription_confirmation.json")
    assert post(client, sources["ses"], body).status_code == 200
    assert opened == [body["SubscribeURL"]]


# --- repeats ---


def test_sendgrid_retried_batch_counts_once_even_with_new_event_ids(client, sources, send_records):
    deliver(client, sources, "sendgrid", "08a_first_post.json")
    retried = sample("sendgrid", "08b_retried_post_with_duplicate.json")
    retried[0]["sg_event_id"] = "renumbered-on-retry"
    assert post(client, sources["sendgrid"], retried).status_code == 200
    assert post(client, sources["sendgrid"], retried).status_code == 200
    notification = Notification.objects.get(provider_message_id="P1BlMHph9JfLrZreT9ZEm0")
    assert notification.final_status == "delivered"
    assert notification.duplicate_events == 3  # delivered twice more, open once more
    assert last_raw(sources["sendgrid"]).outcome == Outcome.DUPLICATE
    assert notification.events.filter(event_type="delivered").count() == 1


def test_mailgun_exact_repost_is_a_duplicate(client, sources, send_records):
    deliver(client, sources, "mailgun", "01_delivered.json")
    response = deliver(client, sources, "mailgun", "14_delivered_duplicate_retry.json")
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    notification = Notification.objects.get(notification_key="ntf_9C0D11:email")
    assert notification.duplicate_events == 1
    assert notification.events.filter(source=sources["mailgun"]).count() == 1


# --- out of order ---


def test_sendgrid_events_posted_in_reverse_still_settle_as_delivered(client, sources, send_records):
    for event in reversed(sample("sendgrid", "01_processed_deferred_delivered.json")):
        assert post(client, sources["sendgrid"], [event]).status_code == 200
    notification = Notification.objects.get(provider_message_id="qNgGf0kHrOq5kLKBmYoroW")
    assert notification.final_status == "delivered"
    assert notification.counts_as_failure is False
    assert notification.attempts == 3


def test_mailgun_complaint_arriving_before_the_delivery_settles_as_a_complaint(
    client, sources, send_records
):
    deliver(client, sources, "mailgun", "12_complained.json")
    deliver(client, sources, "mailgun", "01_delivered.json")
    notification = Notification.objects.get(notification_key="ntf_9C0D11:email")
    assert notification.final_status == "complained"
    assert notification.reason_category == "spam_complaint"
    assert notification.counts_as_failure is False


def test_postmark_delivery_after_a_transient_bounce_settles_as_delivered(
    client, sources, send_records
):
    transient = sample("postmark", "04_bounce_transient_2.json")
    delivery = {
        **sample("postmark", "01_delivery.json"),
        "MessageID": transient["MessageID"],
        "Recipient": transient["Email"],
        "DeliveredAt": "2025-03-14T15:44:00Z",
        "Metadata": transient["Metadata"],
    }
    post(client, sources["postmark"], delivery)
    post(client, sources["postmark"], transient)
    notification = Notification.objects.get(provider_message_id=transient["MessageID"])
    assert notification.final_status == "delivered"


def test_ses_delivery_arriving_after_the_complaint_settles_as_a_complaint(
    client, sources, send_records
):
    complaint = sample("ses", "09_complaint_abuse.json")
    inner = json.loads(complaint["Message"])
    delivery = {
        **complaint,
        "MessageId": "0f1e2d3c-0000-4000-8000-00000000d001",
        "Message": json.dumps(
            {
                "notificationType": "Delivery",
                "mail": inner["mail"],
                "delivery": {
                    "timestamp": "2025-03-14T07:30:02.000Z",
                    "recipients": ["sam.okafor@example.com"],
                    "smtpResponse": "250 2.0.0 OK",
                },
            }
        ),
    }
    assert post(client, sources["ses"], complaint).status_code == 200
    assert post(client, sources["ses"], delivery).status_code == 200
    notification = Notification.objects.get(notification_key="ntf_AS0009:email")
    assert notification.final_status == "complained"
    assert notification.events.filter(source=sources["ses"]).count() == 2
