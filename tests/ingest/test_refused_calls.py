"""Webhook calls refused before anything is trusted: kept to inspect, but a flood only counted;
and bodies refused for their size are read to the end so the connection stays usable."""

import io
import json

import pytest
from django.test import RequestFactory

from notifwatch.ingest.models import Outcome, RawEvent, RefusedCallTally
from notifwatch.ingest.views import api_events, source_webhook

pytestmark = pytest.mark.django_db


def unsigned_call(client, n: int):
    return client.post(
        "/hooks/billing/", data=json.dumps({"n": n}), content_type="application/json"
    )


def test_it_keeps_the_first_refused_calls_of_the_hour_and_counts_the_rest(
    client, json_source, settings, admin_user
):
    settings.NOTIFWATCH_REFUSED_BODIES_PER_HOUR = 3

    answers = {unsigned_call(client, n).status_code for n in range(10)}

    assert answers == {401}
    assert RawEvent.objects.filter(outcome=Outcome.REJECTED).count() == 3
    tally = RefusedCallTally.objects.get()
    assert (tally.count, tally.last_reason) == (7, "missing or wrong bearer token")
    client.force_login(admin_user)
    page = client.get(f"/sources/{json_source.slug}/").content.decode()
    assert "10 rejected calls since" in page


def test_it_still_stores_calls_below_the_limit(client, json_source, settings):
    settings.NOTIFWATCH_REFUSED_BODIES_PER_HOUR = 100

    for n in range(5):
        unsigned_call(client, n)

    assert RawEvent.objects.filter(outcome=Outcome.REJECTED).count() == 5
    assert not RefusedCallTally.objects.exists()


def oversized_request(path: str, size: int, **headers):
    stream = io.BytesIO(b"x" * size)
    request = RequestFactory().generic(
        "POST", path, data=b"", content_type="application/json", **headers
    )
    request.META["wsgi.input"] = stream
    request.META["CONTENT_LENGTH"] = str(size)
    # WSGIRequest reads through a stream limited to CONTENT_LENGTH, as under gunicorn.
    from django.core.handlers.wsgi import WSGIRequest

    return WSGIRequest(request.META), stream


def test_it_reads_a_refused_oversized_body_to_the_end(json_source, settings):
    settings.NOTIFWATCH_MAX_BODY_BYTES = 1000
    request, stream = oversized_request(
        "/api/v1/events", 300_000, HTTP_AUTHORIZATION=f"Bearer {json_source.token}"
    )

    response = api_events(request)

    assert response.status_code == 413
    # Unread bytes would be taken for the next request on a keep-alive connection.
    assert stream.tell() == 300_000
    assert RawEvent.objects.count() == 0


def test_it_reads_an_oversized_webhook_body_before_checking_credentials(json_source, settings):
    settings.NOTIFWATCH_MAX_BODY_BYTES = 1000
    request, stream = oversized_request("/hooks/billing/", 50_000)

    response = source_webhook(request, slug="billing")

    assert response.status_code == 413
    assert stream.tell() == 50_000


def test_it_stops_reading_a_huge_body_after_a_bounded_amount(json_source, settings):
    settings.NOTIFWATCH_MAX_BODY_BYTES = 1000
    request, stream = oversized_request(
        "/api/v1/events", 3_000_000, HTTP_AUTHORIZATION=f"Bearer {json_source.token}"
    )

    assert api_events(request).status_code == 413
    # Past this, gunicorn closes the connection: cheaper than reading a flood to the end.
    assert stream.tell() == 1024 * 1024


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=", "multipart/form-data; boundary=nope", "multipart/form-data"],
)
def test_it_refuses_and_keeps_a_form_post_whose_multipart_body_cannot_be_read(
    client, db, content_type
):
    from notifwatch.ingest.actions import save_source

    save_source(slug="twilio-sms", kind="twilio", secret="a-twilio-auth-token")

    response = client.post(
        "/hooks/twilio-sms/",
        data=b'--broken\r\nContent-Disposition: form-data; name="MessageSid"\r\n\r\nSM1',
        content_type=content_type,
        HTTP_X_TWILIO_SIGNATURE="c2lnbmF0dXJl",
    )

    assert response.status_code in (400, 403)
    raw = RawEvent.objects.get()
    assert raw.outcome == Outcome.REJECTED and raw.reason


def test_a_multipart_body_can_be_read_again_from_what_was_stored(client, db):
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.providers.email import stored_request

    source = save_source(slug="twilio-sms", kind="twilio", secret="a-twilio-auth-token").source
    client.post(
        "/hooks/twilio-sms/",
        data={"MessageSid": "SM1", "MessageStatus": "delivered"},  # multipart by default
        HTTP_X_TWILIO_SIGNATURE="c2lnbmF0dXJl",
    )

    raw = RawEvent.objects.get(source=source)
    assert "boundary=" in raw.content_type
    assert stored_request(raw).POST["MessageStatus"] == "delivered"
