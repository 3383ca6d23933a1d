"""Twilio status callbacks through the real endpoint, POST /hooks/<slug>/, behind a TLS proxy."""

import json
from pathlib import Path

import pytest
from django.http import QueryDict
from twilio.request_validator import RequestValidator

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.models import Outcome, RawEvent
from notifwatch.ingest.providers import public_webhook_url

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TWILIO = FIXTURES / "twilio"
TOKEN = "notifwatch_test_twilio_auth_token"
BASE_URL = "https://notifwatch.example.com"
FORM = "application/x-www-form-urlencoded"
EXPECTED = json.loads((TWILIO / "expected.json").read_text())
# The send records that name each sample's MessageSid (and the customer behind it).
SEND_RECORDS = FIXTURES / "inhouse" / "07_send_records_for_provider_samples.jsonl"


def lines(name: str) -> list[str]:
    return [line for line in (TWILIO / name).read_text().splitlines() if line.strip()]


@pytest.fixture
def twilio_source(db, settings):
    from notifwatch.ingest.actions import save_source

    settings.NOTIFWATCH_BASE_URL = BASE_URL
    return save_source(slug="twilio-sms", kind="twilio", secret=TOKEN).source


@pytest.fixture
def send_records(inhouse_source):
    from notifwatch.ingest.importer import import_path

    import_path(inhouse_source, str(SEND_RECORDS))
    return inhouse_source


def sign(source, body: str, token: str = TOKEN, url: str | None = None) -> str:
    return RequestValidator(token).compute_signature(
        url or public_webhook_url(source), QueryDict(body)
    )


def post(client, source, body: str, signature: str | None = "sign", proxy: str = "tls", **extra):
    """POST one callback the way it reaches us behind a proxy: Twilio called the public https
    address, the app sees another host (and, with proxy="plain", plain http)."""
    if signature == "sign":
        signature = sign(source, body)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature is not None else {}
    if proxy == "tls":
        headers["HTTP_X_FORWARDED_PROTO"] = "https"
    return client.post(
        f"/hooks/{source.slug}/",
        data=body,
        content_type=FORM,
        HTTP_HOST="localhost:8000",
        **headers,
        **extra,
    )


def deliver(client, source, name: str, **kwargs) -> list:
    responses = [post(client, source, body, **kwargs) for body in lines(name)]
    return responses


def notification_for(source, sid: str) -> Notification:
    """The notification the callbacks of one MessageSid settled (joined or not)."""
    found = list(
        Notification.objects.filter(events__source=source, events__provider_message_id=sid)
        .distinct()
        .order_by("id")
    )
    assert len(found) == 1, found
    return found[0]


SETTLING = [
    name
    for name, case in EXPECTED.items()
    if case["expected"][0]["final_status"] not in ("not_applicable", "parse_error")
]


@pytest.mark.parametrize("name", SETTLING)
def test_every_fixture_through_the_endpoint(client, twilio_source, send_records, name):
    responses = deliver(client, twilio_source, name)
    assert [r.status_code for r in responses] == [200] * len(responses), [
        r.content for r in responses
    ]
    expected = EXPECTED[name]["expected"][0]
    notification = notification_for(twilio_source, expected["message_key"])
    assert notification.final_status == expected["final_status"]
    assert (notification.reason_category or None) == expected["category"]
    assert notification.counts_as_failure is expected["counts_as_failure"]
    if expected["permanent"] is not None:
        assert notification.permanent is expected["permanent"]
    if expected["provider_code"]:
        assert notification.error_code == expected["provider_code"]
    assert notification.recipient == expected["recipient"]
    assert notification.duplicate_events == (1 if expected["is_duplicate"] else 0)
    assert notification.duplicate_sends == 0
    if expected["customer_id"]:
        assert notification.customer_id == expected["customer_id"]
    if expected["identity_problem"]:
        assert notification.customer_id == ""
        assert notification.identity_problem != ""
    else:
        assert notification.identity_problem == ""


def test_signature_checked_against_public_url_over_plain_http_too(client, twilio_source):
    """A proxy that does not say X-Forwarded-Proto: the request looks like http://localhost."""
    responses = deliver(client, twilio_source, "01_sms_delivered.txt", proxy="plain")
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert notification_for(twilio_source, "SMda7b88cfafb154627de3d4ea6bea5b79").final_status == (
        "delivered"
    )


def test_secure_request_to_another_host(client, twilio_source):
    body = lines("01_sms_delivered.txt")[2]
    response = client.post(
        f"/hooks/{twilio_source.slug}/",
        data=body,
        content_type=FORM,
        secure=True,
        HTTP_X_TWILIO_SIGNATURE=sign(twilio_source, body),
    )
    assert response.status_code == 200


def test_query_string_in_the_pasted_url_is_signed_too(client, twilio_source):
    body = lines("07_sms_failed_21610_opted_out.txt")[0]
    url = public_webhook_url(twilio_source) + "?team=support"
    response = client.post(
        f"/hooks/{twilio_source.slug}/?team=support",
        data=body,
        content_type=FORM,
        secure=True,
        HTTP_X_TWILIO_SIGNATURE=sign(twilio_source, body, url=url),
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("forged", "signature mismatch"),
        ("wrong-token", "signature mismatch"),
        ("internal-url", "signature mismatch"),
        (None, "missing X-Twilio-Signature"),
    ],
)
def test_forged_or_unsigned_callbacks_are_refused_and_kept(
    client, twilio_source, signature, reason
):
    body = lines("01_sms_delivered.txt")[2]
    value = {
        "forged": "IT/q8FNCHhQsrIZIBcuhuC54FNY=",
        "wrong-token": sign(twilio_source, body, token="rotated-token"),
        "internal-url": sign(twilio_source, body, url="http://localhost:8000/hooks/twilio-sms/"),
        None: None,
    }[signature]
    response = post(client, twilio_source, body, signature=value)
    assert response.status_code == 403
    (raw,) = RawEvent.objects.filter(source=twilio_source)
    assert raw.outcome == Outcome.REJECTED
    assert raw.reason == reason
    assert not DeliveryEvent.objects.exists() and not Notification.objects.exists()


def test_the_shared_sample_signatures_are_refused_at_our_address(client, twilio_source):
    """signatures.json signs for another URL: valid Twilio signatures, but not for this endpoint."""
    signatures = json.loads((TWILIO / "signatures.json").read_text())
    entry = signatures["files"]["twilio/01_sms_delivered.txt"][0]
    body = lines("01_sms_delivered.txt")[0]
    response = post(client, twilio_source, body, signature=entry["X-Twilio-Signature"])
    assert response.status_code == 403


def test_tampered_body_is_refused(client, twilio_source):
    body = lines("02_sms_undelivered_30003_unreachable.txt")[2]
    signature = sign(twilio_source, body)
    tampered = body.replace("undelivered", "delivered").replace("&ErrorCode=30003", "")
    response = post(client, twilio_source, tampered, signature=signature)
    assert response.status_code == 403
    assert RawEvent.objects.get(source=twilio_source).outcome == Outcome.REJECTED


def test_duplicate_callback_is_counted_once(client, twilio_source, send_records):
    responses = deliver(client, twilio_source, "12_sms_duplicate_delivered_callback.txt")
    assert [r.status_code for r in responses] == [200, 200, 200]
    outcomes = list(
        RawEvent.objects.filter(source=twilio_source)
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes == [Outcome.PARSED, Outcome.PARSED, Outcome.DUPLICATE]
    notification = notification_for(twilio_source, "SM42b7607a65fb6410905298643ac21eb3")
    assert notification.duplicate_events == 1
    twilio_events = DeliveryEvent.objects.filter(source=twilio_source)
    assert twilio_events.count() == 2
    assert sum(e.duplicate_count for e in twilio_events) == 1
    assert notification.final_status == "delivered" and notification.duplicate_sends == 0


def test_late_sent_after_delivered_settles_delivered(client, twilio_source):
    deliver(client, twilio_source, "14_sms_out_of_order.txt")
    notification = notification_for(twilio_source, "SMfd4e9550b9283419eba5f40fe1b39cc1")
    assert notification.final_status == "delivered"
    assert notification.counts_as_failure is False
    assert notification.event_count == 3


@pytest.mark.parametrize(
    ("name", "sid", "code", "permanent"),
    [
        (
            "02_sms_undelivered_30003_unreachable.txt",
            "SM0bd4d93166209859e92dae494af67590",
            "30003",
            False,
        ),
        (
            "04_sms_undelivered_30006_landline.txt",
            "SM8c1b2eef7426c0f78b1165da6db089d5",
            "30006",
            True,
        ),
    ],
)
def test_unreachable_and_landline_are_bounces(client, twilio_source, name, sid, code, permanent):
    deliver(client, twilio_source, name)
    notification = notification_for(twilio_source, sid)
    assert notification.final_status == "bounced"
    assert notification.reason_category == "landline_or_unreachable"
    assert notification.counts_as_failure is True
    assert notification.permanent is permanent
    assert notification.fix_owner == "recipient_data"
    assert notification.error_code == code


def test_opt_out_is_suppressed_and_not_a_failure(client, twilio_source):
    deliver(client, twilio_source, "07_sms_failed_21610_opted_out.txt")
    notification = notification_for(twilio_source, "SM98b7fe27064d8bb57d4cf8fc31c9d904")
    assert notification.final_status == "suppressed"
    assert notification.reason_category == "unsubscribed_suppressed"
    assert notification.fix_owner == "recipient_choice"
    assert notification.counts_as_failure is False


def test_callbacks_join_the_send_record_and_gain_its_customer(client, twilio_source, send_records):
    deliver(client, twilio_source, "01_sms_delivered.txt")
    notification = notification_for(twilio_source, "SMda7b88cfafb154627de3d4ea6bea5b79")
    assert notification.customer_id == "cus_10482"
    assert notification.purpose == "out_for_delivery_sms"
    assert notification.refs.get("order_id") == "ORD-2025-118734"
    assert notification.channel == "sms"
    assert notification.final_status == "delivered"
    assert notification.identity_problem == ""


def test_orphan_callback_is_kept_and_flagged(client, twilio_source, send_records):
    deliver(client, twilio_source, "13_sms_orphan_callback.txt")
    notification = notification_for(twilio_source, "SM5e0c3f1d2b7a4968a1c0d9e8f7a6b5c4")
    assert notification.final_status == "delivered"
    assert notification.customer_id == ""
    assert notification.identity_problem != ""


def test_not_delivery_callbacks_are_ignored(client, twilio_source):
    responses = deliver(client, twilio_source, "90_not_delivery_callbacks.txt")
    assert [r.status_code for r in responses] == [200, 200]
    assert set(RawEvent.objects.filter(source=twilio_source).values_list("outcome", flat=True)) == {
        Outcome.IGNORED
    }
    assert not Notification.objects.exists()


def test_unknown_status_is_quarantined_with_its_reason(client, twilio_source):
    (response,) = deliver(client, twilio_source, "91_unknown_message_status.txt")
    assert response.status_code == 422
    raw = RawEvent.objects.get(source=twilio_source)
    assert raw.outcome == Outcome.QUARANTINED
    assert "teleported" in raw.reason
    assert not Notification.objects.exists()


def test_send_record_imported_after_the_callbacks_still_gives_the_customer(
    client, twilio_source, inhouse_source
):
    from notifwatch.ingest.importer import import_path

    deliver(client, twilio_source, "02_sms_undelivered_30003_unreachable.txt")
    import_path(inhouse_source, str(SEND_RECORDS))
    notification = notification_for(twilio_source, "SM0bd4d93166209859e92dae494af67590")
    assert notification.customer_id == "cus_10517"
    assert notification.final_status == "bounced"
    assert notification.identity_problem == ""
