"""POST /hooks/<slug>/ for a JSON source signed with the Standard Webhooks scheme."""

import base64
import json
import time

import pytest

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import Outcome, RawEvent
from notifwatch.ingest.presets import load_preset
from notifwatch.ingest.standard_webhooks import sign

pytestmark = pytest.mark.django_db
SECRET = "whsec_" + base64.b64encode(b"an-ipaas-shared-secret-0123456789").decode()
LINE = {
    "ts": "2025-03-14T10:01:31Z",
    "event": "notification.attempt",
    "channel": "email",
    "customer_id": "cus_1",
    "template": "order_confirmation",
    "attempt": 1,
    "idempotency_key": "ord-1:order_confirmation:email",
    "recipient": {"email": "a@example.com"},
    "status": "delivered",
    "message_id": "m-1",
}


@pytest.fixture
def signed_source(db):
    return save_source(
        slug="ipaas", kind="json", secret=SECRET, mapping=load_preset("inhouse_log")
    ).source


def post(client, body: bytes, *, secret=SECRET, timestamp=None, message_id="msg_1"):
    timestamp = int(timestamp or time.time())
    return client.post(
        "/hooks/ipaas/",
        data=body,
        content_type="application/json",
        headers={
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        },
    )


def test_it_accepts_a_validly_signed_mapped_event(client, signed_source):
    assert signed_source.signing_key == SECRET and not signed_source.credential_hash

    response = post(client, json.dumps(LINE).encode())

    assert response.status_code == 200
    assert Notification.objects.get().final_status == "delivered"


def test_it_refuses_a_wrong_signature_and_counts_it(client, signed_source):
    wrong = "whsec_" + base64.b64encode(b"someone-else").decode()
    response = post(client, json.dumps(LINE).encode(), secret=wrong)

    assert response.status_code == 403
    raw = RawEvent.objects.get()
    assert (raw.outcome, raw.reason) == (Outcome.REJECTED, "signature mismatch")
    assert not Notification.objects.exists()


def test_it_refuses_a_replayed_old_request(client, signed_source):
    response = post(client, json.dumps(LINE).encode(), timestamp=time.time() - 3600)
    assert response.status_code == 401
    assert "too old" in RawEvent.objects.get().reason


def test_it_refuses_an_unsigned_request(client, signed_source):
    response = client.post("/hooks/ipaas/", data=json.dumps(LINE), content_type="application/json")
    assert response.status_code == 401


def test_it_rejects_a_malformed_secret_when_the_source_is_saved(db):
    with pytest.raises(ValueError, match="base64"):
        save_source(slug="bad", kind="json", secret="whsec_not base64!")
