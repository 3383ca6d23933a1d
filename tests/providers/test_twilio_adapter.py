"""The Twilio adapter on its own: signatures, reading callbacks, ids and times, settling."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from django.test import RequestFactory
from twilio.request_validator import RequestValidator

from notifwatch.deliveries.status import EventFacts, settle
from notifwatch.ingest.canonical import canonical_events, parse_occurred_at
from notifwatch.ingest.models import RawEvent, Source
from notifwatch.ingest.providers import Rejected, adapter_for, public_webhook_url
from notifwatch.ingest.providers.twilio import TwilioAdapter, parse_dlr_date

TWILIO = Path(__file__).resolve().parents[2] / "fixtures" / "twilio"
TOKEN = "notifwatch_test_twilio_auth_token"
BASE_URL = "https://notifwatch.example.com"
FORM = "application/x-www-form-urlencoded"
RECEIVED = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)
EXPECTED = json.loads((TWILIO / "expected.json").read_text())

adapter = TwilioAdapter()


def lines(name: str) -> list[str]:
    return [line for line in (TWILIO / name).read_text().splitlines() if line.strip()]


def callback(**fields) -> str:
    values = {
        "SmsSid": "SMaaaa",
        "MessageSid": "SMaaaa",
        "AccountSid": "AC6eede0a1c20800a68674b1dc0f10d74d",
        "From": "+12025550100",
        "To": "+12025550142",
        "ApiVersion": "2010-04-01",
    }
    values.update(fields)
    return urlencode(values)


def raw_event(body: str, received_at: datetime = RECEIVED, content_type: str = FORM) -> RawEvent:
    return RawEvent(
        received_at=received_at,
        transport="webhook",
        content_type=content_type,
        headers={"Content-Type": content_type},
        body=body.encode(),
    )


@pytest.fixture
def source(settings):
    settings.NOTIFWATCH_BASE_URL = BASE_URL
    return Source(slug="twilio-sms", kind="twilio", signing_key=TOKEN)


def parse(source: Source, body: str, **kwargs):
    return adapter.parse(source, raw_event(body, **kwargs))


def only_record(source: Source, body: str, **kwargs):
    parsed = parse(source, body, **kwargs)
    assert not parsed.problems and not parsed.ignored
    assert len(parsed.records) == 1
    return parsed.records[0]


def test_registered_for_kind_twilio_with_setup_help():
    registered = adapter_for("twilio")
    assert registered is not None and registered.kind == "twilio"
    setup = registered.setup
    assert "StatusCallback" in setup.events and "Status callback URL" in setup.events
    assert "auth token" in setup.secret
    assert "NOTIFWATCH_BASE_URL" in setup.notes and "https://" in setup.notes


# --- The sample signatures: proof that we call RequestValidator the way Twilio signs. ---

SIGNATURES = json.loads((TWILIO / "signatures.json").read_text())
SIGNED_LINES = [
    (name.split("/", 1)[1], entry["line"], entry["X-Twilio-Signature"])
    for name, entries in SIGNATURES["files"].items()
    for entry in entries
]


@pytest.mark.parametrize(("name", "line", "signature"), SIGNED_LINES)
def test_sample_signature_validates_for_its_url_and_token_only(name, line, signature):
    params = QueryDict(lines(name)[line - 1])
    validator = RequestValidator(SIGNATURES["auth_token"])
    url = SIGNATURES["callback_url"]
    assert validator.validate(url, params, signature)
    # The same call seen at another address (what a proxy forwards to) is refused ...
    assert not validator.validate(url.replace("https://", "http://"), params, signature)
    assert not validator.validate(BASE_URL + "/hooks/twilio-sms/", params, signature)
    # ... and so is another account's token, or a changed field.
    assert not RequestValidator("another-token").validate(url, params, signature)
    changed = params.copy()
    changed["MessageStatus"] = "delivered" if changed["MessageStatus"] != "delivered" else "failed"
    assert not validator.validate(url, changed, signature)


# --- authenticate(): the public URL, not the request's. ---


def signed_request(source, body: str, *, token=TOKEN, url=None, query="", **headers):
    url = url or public_webhook_url(source) + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url, QueryDict(body))
    path = f"/hooks/{source.slug}/" + (f"?{query}" if query else "")
    return RequestFactory().post(
        path,
        data=body,
        content_type=FORM,
        headers={"X-Twilio-Signature": signature, **headers},
        # The proxy forwards plain HTTP to an internal host.
        HTTP_HOST="localhost:8000",
    )


def test_signature_over_the_public_url_passes_behind_a_tls_proxy(source):
    body = lines("01_sms_delivered.txt")[0]
    request = signed_request(source, body)
    assert request.build_absolute_uri() == "http://localhost:8000/hooks/twilio-sms/"
    adapter.authenticate(source, request)  # no exception


def test_query_string_is_part_of_the_signed_url(source):
    body = lines("01_sms_delivered.txt")[0]
    adapter.authenticate(source, signed_request(source, body, query="team=billing&x=1"))
    # Signed without the query, called with it: refused.
    request = signed_request(source, body, url=public_webhook_url(source))
    request.META["QUERY_STRING"] = "team=billing"
    with pytest.raises(Rejected, match="signature mismatch"):
        adapter.authenticate(source, request)


def test_signature_for_the_internal_url_is_refused(source):
    body = lines("01_sms_delivered.txt")[0]
    request = signed_request(source, body, url="http://localhost:8000/hooks/twilio-sms/")
    with pytest.raises(Rejected) as refused:
        adapter.authenticate(source, request)
    assert refused.value.status == 403 and refused.value.reason == "signature mismatch"


def test_wrong_token_or_tampered_body_is_refused(source):
    body = lines("02_sms_undelivered_30003_unreachable.txt")[2]
    with pytest.raises(Rejected, match="signature mismatch"):
        adapter.authenticate(source, signed_request(source, body, token="rotated-token"))
    request = signed_request(source, body)
    tampered = body.replace("undelivered", "delivered")
    forged = RequestFactory().post(
        request.path,
        data=tampered,
        content_type=FORM,
        headers={"X-Twilio-Signature": request.headers["X-Twilio-Signature"]},
    )
    with pytest.raises(Rejected, match="signature mismatch"):
        adapter.authenticate(source, forged)


def test_missing_signature_is_refused(source):
    request = RequestFactory().post(
        "/hooks/twilio-sms/", data=lines("01_sms_delivered.txt")[0], content_type=FORM
    )
    with pytest.raises(Rejected) as refused:
        adapter.authenticate(source, request)
    assert refused.value.status == 403
    assert refused.value.reason == "missing X-Twilio-Signature"


def test_source_without_token_refuses_everything(source):
    body = lines("01_sms_delivered.txt")[0]
    request = signed_request(source, body)
    source.signing_key = ""
    with pytest.raises(Rejected) as refused:
        adapter.authenticate(source, request)
    assert refused.value.status == 403


def test_shared_key_signature_with_the_algorithm_twilio_names(source):
    """Twilio's Webhooks configuration API can sign with a SharedKey and HMAC-SHA256."""
    source.signing_key = "shared-key-secret"
    body = lines("01_sms_delivered.txt")[2]
    signature = RequestValidator("shared-key-secret").compute_signature(
        public_webhook_url(source), QueryDict(body), "HMAC_SHA256"
    )

    def request(settings_header: str):
        return RequestFactory().post(
            "/hooks/twilio-sms/",
            data=body,
            content_type=FORM,
            headers={
                "X-Twilio-Signature": signature,
                "X-Twilio-Webhooks-Signature-Settings": settings_header,
            },
        )

    adapter.authenticate(source, request("key=webhooks_sharedkey_01,algorithm=HMAC_SHA256"))
    with pytest.raises(Rejected, match="signature mismatch"):
        adapter.authenticate(source, request("key=webhooks_sharedkey_01,algorithm=HMAC_SHA1"))
    with pytest.raises(Rejected, match="unsupported signature algorithm 'HMAC_MD5'"):
        adapter.authenticate(source, request("key=webhooks_sharedkey_01,algorithm=HMAC_MD5"))


# --- parse(): every fixture line. ---

# (event type, error code) per line, in arrival order.
FIXTURE_EVENTS = {
    "01_sms_delivered.txt": [("queued", ""), ("sent", ""), ("delivered", "")],
    "02_sms_undelivered_30003_unreachable.txt": [
        ("queued", ""),
        ("sent", ""),
        ("bounced", "30003"),
    ],
    "04_sms_undelivered_30006_landline.txt": [("queued", ""), ("sent", ""), ("bounced", "30006")],
    "07_sms_failed_21610_opted_out.txt": [("failed", "21610")],
    "12_sms_duplicate_delivered_callback.txt": [("sent", ""), ("delivered", ""), ("delivered", "")],
    "13_sms_orphan_callback.txt": [("sent", ""), ("delivered", "")],
    "14_sms_out_of_order.txt": [("queued", ""), ("delivered", ""), ("sent", "")],
    "20_whatsapp_delivered_then_read.txt": [
        ("queued", ""),
        ("sent", ""),
        ("delivered", ""),
        ("delivered", ""),
    ],
    "30_sms_undelivered_30007_carrier_filtered.txt": [
        ("queued", ""),
        ("sent", ""),
        ("failed", "30007"),
    ],
    "31_sms_undelivered_30008_unknown_error.txt": [
        ("queued", ""),
        ("sent", ""),
        ("failed", "30008"),
    ],
    "32_sms_undelivered_without_error_code.txt": [("sent", ""), ("failed", "")],
    "33_sms_undelivered_30019_content_too_large.txt": [
        ("queued", ""),
        ("sent", ""),
        ("failed", "30019"),
    ],
    "34_sms_failed_30036_validity_period_expired.txt": [("queued", ""), ("failed", "30036")],
    "35_sms_undelivered_30035_registration_pending.txt": [
        ("queued", ""),
        ("sent", ""),
        ("failed", "30035"),
    ],
    "36_sms_failed_30450_fraud_protection_hold.txt": [("queued", ""), ("failed", "30450")],
    "37_sms_failed_30500_provider_internal_error.txt": [("queued", ""), ("failed", "30500")],
    "38_sms_failed_21612_cannot_connect.txt": [("queued", ""), ("failed", "21612")],
    "39_sms_failed_21660_sender_not_in_account.txt": [("queued", ""), ("failed", "21660")],
    "40_sms_failed_21703_no_sender_in_service.txt": [("queued", ""), ("failed", "21703")],
    "41_whatsapp_failed_63003_not_on_whatsapp.txt": [("queued", ""), ("failed", "63003")],
    # Recorded as suppressed: the opt-out reason decides, as for an SMS STOP.
    "42_whatsapp_failed_63014_blocked_by_customer.txt": [("queued", ""), ("failed", "63014")],
    "43_whatsapp_failed_63016_outside_window.txt": [("queued", ""), ("failed", "63016")],
    "44_whatsapp_failed_63018_sender_limit.txt": [("queued", ""), ("failed", "63018")],
    "45_whatsapp_failed_63021_content_refused.txt": [("queued", ""), ("failed", "63021")],
    "46_whatsapp_undelivered_63024_cannot_receive.txt": [("queued", ""), ("bounced", "63024")],
    "47_whatsapp_failed_63032_marketing_experiment.txt": [("queued", ""), ("failed", "63032")],
}
# Posted to the status URL but not about a message we sent.
NOT_DELIVERY_FILES = {
    "90_not_delivery_callbacks.txt",
    "91_unknown_message_status.txt",
    "92_inbound_missing_segment_30009.txt",
}


def test_every_fixture_file_is_covered():
    files = {p.name for p in TWILIO.glob("*.txt")}
    assert files == set(EXPECTED)
    assert set(FIXTURE_EVENTS) | NOT_DELIVERY_FILES == files


@pytest.mark.parametrize("name", sorted(FIXTURE_EVENTS))
def test_fixture_lines_parse_to_canonical_events(source, name):
    expected = EXPECTED[name]["expected"][0]
    sid = expected["message_key"]
    seen = []
    for body in lines(name):
        record = only_record(source, body)
        values = record.values
        seen.append((values["status"], values["error_code"]))
        assert values["provider"] == "twilio"
        assert values["provider_message_id"] == sid
        assert values["notification_key"] == ""
        assert values["channel"] == expected.get("channel", "sms")
        assert values["recipient"] == expected["recipient"]
        # The whole form is kept beside the normalised event.
        assert record.raw == dict(QueryDict(body).items())
        assert record.raw["AccountSid"].startswith("AC")
        # And it is a valid canonical event, found by its provider message id.
        (event,) = canonical_events(values, fallback_event_id="unused")
        assert event.notification_key == sid and event.recipient == expected["recipient"]
    assert seen == FIXTURE_EVENTS[name]


def test_raw_keeps_carrier_receipt_and_sender(source):
    record = only_record(source, lines("01_sms_delivered.txt")[2])
    assert record.raw["RawDlrDoneDate"] == "2503141532"
    assert record.raw["From"] == "+12025550100"
    assert record.raw["MessagingServiceSid"].startswith("MG")


def test_identical_callbacks_get_the_same_event_id(source):
    first, second, third = lines("12_sms_duplicate_delivered_callback.txt")
    later = RECEIVED + timedelta(minutes=5)
    delivered = only_record(source, second).values["event_id"]
    repeat = only_record(source, third, received_at=later).values["event_id"]
    assert delivered == repeat == "SM42b7607a65fb6410905298643ac21eb3:delivered"
    assert only_record(source, first).values["event_id"] != delivered
    # Stable across reprocessing of the same stored raw event, too.
    assert only_record(source, second).values["event_id"] == delivered


def test_error_code_is_part_of_the_event_id(source):
    one = only_record(source, callback(MessageStatus="undelivered", ErrorCode="30003"))
    two = only_record(source, callback(MessageStatus="undelivered", ErrorCode="30005"))
    assert one.values["event_id"] == "SMaaaa:undelivered:30003"
    assert one.values["event_id"] != two.values["event_id"]


def test_occurred_at_is_the_carrier_receipt_when_present(source):
    delivered = only_record(source, lines("01_sms_delivered.txt")[2])
    assert parse_occurred_at(delivered.values["occurred_at"]) == datetime(
        2025, 3, 14, 15, 32, tzinfo=UTC
    )
    queued = only_record(source, lines("01_sms_delivered.txt")[0])
    assert parse_occurred_at(queued.values["occurred_at"]) == RECEIVED


def test_carrier_receipt_after_arrival_is_not_trusted(source):
    # A receipt stamped in the carrier's local time can lie in the future: use the arrival.
    body = callback(MessageStatus="delivered", RawDlrDoneDate="2503142359")
    record = only_record(source, body)
    assert parse_occurred_at(record.values["occurred_at"]) == RECEIVED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2503141532", datetime(2025, 3, 14, 15, 32, tzinfo=UTC)),
        ("250314153207", datetime(2025, 3, 14, 15, 32, 7, tzinfo=UTC)),
        ("2513141532", None),
        ("25031415", None),
        ("", None),
        (None, None),
    ],
)
def test_dlr_date_format(value, expected):
    assert parse_dlr_date(value) == expected


@pytest.mark.parametrize(
    ("twilio_status", "error_code", "event_type"),
    [
        ("accepted", "", "queued"),
        ("scheduled", "", "queued"),
        ("queued", "", "queued"),
        ("sending", "", "sent"),
        ("sent", "", "sent"),
        ("delivered", "", "delivered"),
        ("read", "", "delivered"),
        ("partially_delivered", "", "delivered"),
        # undelivered: bounced only when the reason is the customer's number or handset.
        ("undelivered", "30003", "bounced"),
        ("undelivered", "30005", "bounced"),
        ("undelivered", "30006", "bounced"),
        ("undelivered", "30008", "failed"),  # the carrier gave no reason: not the customer's side
        ("undelivered", "", "failed"),  # no code at all: just as unexplained
        ("undelivered", "30007", "failed"),  # carrier spam filter: ours to fix
        ("undelivered", "30034", "failed"),  # our sender is unregistered
        ("undelivered", "30022", "failed"),  # throttled
        ("undelivered", "30017", "failed"),  # the carrier was congested
        ("undelivered", "39999", "failed"),  # a code the catalog does not know
        ("undelivered", "21610", "failed"),  # recorded as suppressed: the opt-out reason decides
        # failed/canceled: Twilio never handed it to a carrier, whatever the code says.
        ("failed", "21211", "failed"),
        ("failed", "30001", "failed"),
        ("failed", "63003", "failed"),
        ("failed", "21610", "failed"),  # recorded as suppressed: the opt-out reason decides
        ("canceled", "", "failed"),
        ("DELIVERED", "", "delivered"),
    ],
)
def test_status_mapping(source, twilio_status, error_code, event_type):
    fields = {"MessageStatus": twilio_status}
    if error_code:
        fields["ErrorCode"] = error_code
    values = only_record(source, callback(**fields)).values
    assert values["status"] == event_type
    assert values["error_code"] == error_code


def test_error_message_is_kept_and_canceled_explained(source):
    values = only_record(
        source,
        callback(MessageStatus="failed", ErrorCode="30008", ErrorMessage="Unknown error"),
    ).values
    assert values["error_message"] == "Unknown error"
    canceled = only_record(source, callback(MessageStatus="canceled")).values
    assert "canceled" in canceled["error_message"]


def test_old_style_callback_with_only_sms_fields(source):
    body = urlencode({"SmsSid": "SMold", "SmsStatus": "sent", "To": "+12025550142"})
    values = only_record(source, body).values
    assert values["provider_message_id"] == "SMold" and values["status"] == "sent"


def test_whatsapp_is_channel_other_with_the_phone_number(source):
    values = only_record(source, lines("20_whatsapp_delivered_then_read.txt")[3]).values
    assert values["channel"] == "other"
    assert values["recipient"] == "+447700900123"
    assert values["event_id"].endswith(":read")


def test_inbound_messages_and_calls_are_ignored(source):
    inbound, call = lines("90_not_delivery_callbacks.txt")
    for body, words in ((inbound, "inbound message"), (call, "voice call")):
        parsed = parse(source, body)
        assert parsed.records == [] and parsed.problems == []
        assert words in parsed.ignored[0]


def test_unknown_status_is_a_problem_naming_it(source):
    parsed = parse(source, lines("91_unknown_message_status.txt")[0])
    assert parsed.records == []
    (problem,) = parsed.problems
    assert problem["field"] == "status" and "'teleported'" in problem["message"]


def test_missing_message_sid_or_status_is_a_problem(source):
    parsed = parse(source, urlencode({"MessageStatus": "sent", "To": "+12025550142"}))
    assert parsed.problems[0]["field"] == "provider_message_id"
    parsed = parse(source, urlencode({"MessageSid": "SMx", "To": "+12025550142"}))
    assert parsed.problems[0]["field"] == "status"


def test_body_that_is_not_a_form_is_a_problem(source):
    parsed = parse(source, '{"MessageSid": "SMx"}', content_type="application/json")
    assert parsed.records == []
    assert parsed.problems[0]["field"] is None
    assert "form" in parsed.problems[0]["message"]


# --- Settling: what these events add up to, whatever order they arrived in. ---


def settled(source: Source, name: str, arrival_gap: timedelta = timedelta(seconds=1)):
    """Parse a fixture in arrival order (each line received a moment after the previous) and
    settle its distinct events the way recording does."""
    facts, seen = [], set()
    for order, body in enumerate(lines(name)):
        values = only_record(source, body, received_at=RECEIVED + order * arrival_gap).values
        if values["event_id"] in seen:
            continue
        seen.add(values["event_id"])
        facts.append(
            EventFacts(
                order=order,
                event_type=values["status"],
                occurred_at=parse_occurred_at(values["occurred_at"]),
                provider_message_id=values["provider_message_id"],
                event_id=values["event_id"],
            )
        )
    return settle(facts)


@pytest.mark.parametrize("gap", [timedelta(seconds=1), timedelta(days=400)])
def test_late_sent_after_delivered_stays_delivered(source, gap):
    # With the carrier receipt in the past (gap=400 days: replayed long after) or not.
    assert settled(source, "14_sms_out_of_order.txt", gap).final_status == "delivered"


def test_late_sent_after_delivered_without_carrier_receipt(source):
    sid = "SMbbbb"
    facts = []
    for order, status in enumerate(["queued", "delivered", "sent"]):
        values = only_record(
            source,
            callback(MessageSid=sid, MessageStatus=status),
            received_at=RECEIVED + timedelta(seconds=order),
        ).values
        facts.append(
            EventFacts(
                order=order,
                event_type=values["status"],
                occurred_at=parse_occurred_at(values["occurred_at"]),
                provider_message_id=sid,
                event_id=values["event_id"],
            )
        )
    assert settle(facts).final_status == "delivered"


@pytest.mark.parametrize(
    ("name", "final_status"),
    [
        ("01_sms_delivered.txt", "delivered"),
        ("02_sms_undelivered_30003_unreachable.txt", "bounced"),
        ("04_sms_undelivered_30006_landline.txt", "bounced"),
        ("12_sms_duplicate_delivered_callback.txt", "delivered"),
        ("20_whatsapp_delivered_then_read.txt", "delivered"),
        ("30_sms_undelivered_30007_carrier_filtered.txt", "failed"),
        ("31_sms_undelivered_30008_unknown_error.txt", "failed"),
        ("32_sms_undelivered_without_error_code.txt", "failed"),
        ("46_whatsapp_undelivered_63024_cannot_receive.txt", "bounced"),
    ],
)
def test_fixture_files_settle(source, name, final_status):
    settlement = settled(source, name)
    assert settlement.final_status == final_status
    assert settlement.duplicate_sends == 0
