"""Amazon SES through SNS on a host that cannot reach Amazon: NOTIFWATCH_SNS_CERTS_DIR.

The certificate is read from the folder instead of downloaded; the signature is verified with it
all the same, and a certificate not in the folder is still fetched as before.
"""

# ruff: noqa: F401, F811  (the `sources` fixture is imported from the webhook tests)
import pytest
import requests

from notifwatch.deliveries.models import DeliveryEvent
from notifwatch.ingest.models import Outcome, RawEvent
from notifwatch.ingest.providers import email
from tests.providers.test_email_adapters import (
    SNS_CERT_PEM,
    SNS_CERT_URL,
    make_sns_signer,
    sign_sns,
)
from tests.providers.test_email_webhooks import post, sample, sources

pytestmark = pytest.mark.django_db

CERT_NAME = SNS_CERT_URL.rsplit("/", 1)[-1]


class NoNetwork(requests.ConnectionError):
    """A download was attempted on a host that has no outbound access (as requests says it)."""


@pytest.fixture
def offline(monkeypatch, settings, tmp_path):
    """No download can succeed; the folder holds the certificate the test made."""
    email.sns_public_key.cache_clear()
    tried: list[str] = []

    def fetch(url: str) -> bytes:
        tried.append(url)
        raise NoNetwork(url)

    monkeypatch.setattr(email, "fetch_certificate", fetch)
    (tmp_path / CERT_NAME).write_bytes(SNS_CERT_PEM)
    settings.NOTIFWATCH_SNS_CERTS_DIR = str(tmp_path)
    yield tried
    email.sns_public_key.cache_clear()


def test_an_ses_event_is_verified_and_recorded_without_any_download(
    client,
    sources,
    offline,
):
    response = post(client, sources["ses"], sample("ses", "01_delivery.json"))

    assert response.status_code == 200, response.content
    assert offline == []
    raw = RawEvent.objects.get(source=sources["ses"])
    assert raw.outcome == Outcome.PARSED
    assert DeliveryEvent.objects.filter(source=sources["ses"], event_type="delivered").exists()


def test_a_message_signed_by_another_key_is_still_refused(client, sources, offline):
    other_key, _ = make_sns_signer()
    forged = sign_sns(sample("ses", "01_delivery.json"), key=other_key)

    response = post(client, sources["ses"], forged, sign=False)

    assert response.status_code == 403
    assert RawEvent.objects.get(source=sources["ses"]).outcome == Outcome.REJECTED


def test_a_certificate_not_in_the_folder_is_fetched_as_before(
    client,
    sources,
    offline,
    tmp_path,
):
    (tmp_path / CERT_NAME).unlink()

    response = post(client, sources["ses"], sample("ses", "01_delivery.json"))

    # The download is tried (and fails here): 503, so that SNS retries.
    assert offline == [SNS_CERT_URL]
    assert response.status_code == 503


def test_the_folder_is_never_read_for_a_url_off_amazons_hosts(sources, offline, tmp_path):
    (tmp_path / "evil.pem").write_bytes(SNS_CERT_PEM)

    with pytest.raises(email.SNSSignatureProblem, match="not on an Amazon SNS host"):
        email.sns_public_key("https://attacker.example/evil.pem")
