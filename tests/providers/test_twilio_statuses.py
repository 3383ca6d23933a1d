"""Bounced, failed or suppressed: what a Twilio status callback settles, by its status and code.

One rule for every provider (README "Bounced or failed"): `undelivered` is bounced only when the
code's reason is the customer's number or handset; `failed`/`canceled` (Twilio never handed the
message to a carrier) is failed whatever the code; an opt-out is suppressed either way.
"""

from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from twilio.request_validator import RequestValidator

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.models import Outcome, RawEvent
from notifwatch.ingest.providers import public_webhook_url

TWILIO = Path(__file__).resolve().parents[2] / "fixtures" / "twilio"
TOKEN = "notifwatch_test_twilio_auth_token"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def twilio_source(db, settings):
    from notifwatch.ingest.actions import save_source

    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example.com"
    return save_source(slug="twilio-sms", kind="twilio", secret=TOKEN).source


def post(client, source, body: str):
    signature = RequestValidator(TOKEN).compute_signature(
        public_webhook_url(source), QueryDict(body)
    )
    return client.post(
        f"/hooks/{source.slug}/",
        data=body,
        content_type=FORM,
        secure=True,
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def callback(sid: str, status: str, code: str = "", to: str = "+12025550142") -> str:
    fields = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": "AC6eede0a1c20800a68674b1dc0f10d74d",
        "From": "+12025550100",
        "ApiVersion": "2010-04-01",
    }
    if code:
        fields["ErrorCode"] = code
    return urlencode(fields)


@pytest.mark.parametrize(
    ("status", "code", "final_status", "category", "fix_owner", "counts_as_failure"),
    [
        # The carrier's receipt: the customer's side only for their number or handset.
        ("undelivered", "30003", "bounced", "landline_or_unreachable", "recipient_data", True),
        ("undelivered", "30005", "bounced", "invalid_address", "recipient_data", True),
        ("undelivered", "30007", "failed", "carrier_filtered", "our_setup", True),
        ("undelivered", "30008", "failed", "unknown", "unknown", True),
        ("undelivered", "30034", "failed", "auth_or_config_error", "our_setup", True),
        ("undelivered", "", "failed", "", "", True),
        # Twilio refused before any carrier saw it: failed, the reason still names the fix.
        ("failed", "21211", "failed", "invalid_address", "recipient_data", True),
        ("failed", "30001", "failed", "rate_limited", "provider", True),
        ("failed", "30036", "failed", "rate_limited", "our_setup", True),
        ("canceled", "", "failed", "unknown", "unknown", True),  # canceled by us, no code
        # Opt-outs are the customer's choice from either status: suppressed, not a failure.
        ("failed", "21610", "suppressed", "unsubscribed_suppressed", "recipient_choice", False),
        (
            "undelivered",
            "63014",
            "suppressed",
            "unsubscribed_suppressed",
            "recipient_choice",
            False,
        ),
    ],
)
def test_a_refusal_settles_by_the_meaning_of_its_code(
    client, twilio_source, status, code, final_status, category, fix_owner, counts_as_failure
):
    sid = "SM" + (status + code).ljust(32, "0")[:32]
    for body in (callback(sid, "sent"), callback(sid, status, code)):
        assert post(client, twilio_source, body).status_code == 200

    notification = Notification.objects.get(source=twilio_source)
    assert notification.final_status == final_status
    assert notification.reason_category == category
    assert notification.fix_owner == fix_owner
    assert notification.counts_as_failure is counts_as_failure
    assert notification.error_code == code


def test_a_later_delivery_receipt_is_not_undone_by_a_refusal(client, twilio_source):
    sid = "SM" + "d" * 32
    for body in (callback(sid, "delivered"), callback(sid, "undelivered", "30008")):
        assert post(client, twilio_source, body).status_code == 200

    assert Notification.objects.get(source=twilio_source).final_status == "delivered"


def test_an_inbound_message_missing_a_segment_is_not_a_delivery_outcome(client, twilio_source):
    """Twilio's missing-segment error is about a text the customer sent to us."""
    (body,) = (TWILIO / "92_inbound_missing_segment_30009.txt").read_text().splitlines()

    assert post(client, twilio_source, body).status_code == 200

    raw = RawEvent.objects.get(source=twilio_source)
    assert raw.outcome == Outcome.IGNORED
    assert "inbound" in raw.reason
    assert not Notification.objects.exists()


def test_every_text_and_push_reason_reads_without_its_code():
    """The raw code is shown beside the reason; the sentence and action are plain words."""
    import csv

    from notifwatch.failures.reasons import CATALOG_PATH

    with CATALOG_PATH.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["provider"] in ("twilio", "fcm", "apns", "http")]
    assert len(rows) > 80
    for row in rows:
        for code in row["code"].split("|"):
            for text in (row["sentence"], row["action"]):
                assert code not in text, (code, text)
        assert not any(ch.isdigit() for ch in row["sentence"] + row["action"]), row
