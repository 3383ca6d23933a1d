import json

import pytest
from django.urls import reverse

from notifwatch.ingest.models import Outcome, RawEvent, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def hostile(json_source) -> RawEvent:
    body = json.dumps(
        {
            "event_id": "e1",
            "occurred_at": "2025-03-14T10:00:00Z",
            "notification_key": "k1",
            "recipient": "chloe.martin@example.com",
            "status": SCRIPT,
        }
    ).encode()
    raw = store_raw(
        json_source,
        Transport.WEBHOOK,
        body,
        content_type="application/json",
        headers={"User-Agent": SCRIPT, "Content-Type": "application/json"},
    )
    return process_raw_event(raw)


def url(raw: RawEvent) -> str:
    return reverse("raw_event_detail", args=[raw.pk])


def test_it_shows_what_arrived_and_why_it_was_quarantined(client, reviewer, hostile):
    client.force_login(reviewer)

    response = client.get(url(hostile))

    assert response.status_code == 200
    content = response.content.decode()
    assert hostile.outcome == Outcome.QUARANTINED
    assert "Billing sender" in content
    assert "Webhook" in content
    assert "Quarantined" in content
    assert "unknown status value" in content
    assert "<code>status</code>" in content  # the problems table names the field
    assert "User-Agent" in content
    # Pretty-printed JSON, one key per line.
    assert "\n  &quot;notification_key&quot;: &quot;k1&quot;,\n" in content


def test_it_renders_a_script_body_inert(client, reviewer, hostile):
    client.force_login(reviewer)
    content = client.get(url(hostile)).content.decode()
    assert SCRIPT not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_it_shows_a_broken_line_as_text_with_its_origin(client, reviewer, imported):
    imported("05_malformed_and_edge_lines.jsonl")
    raw = RawEvent.objects.get(line_number=8)
    client.force_login(reviewer)

    content = client.get(url(raw)).content.decode()

    assert "05_malformed_and_edge_lines.jsonl:8" in content
    assert "not valid JSON" in content
    assert "shown as text" in content
    assert "Traceback (most recent call last):" in content


def test_it_hides_the_body_from_viewers(client, viewer, hostile):
    client.force_login(viewer)
    content = client.get(url(hostile)).content.decode()
    assert "Raw payload hidden: it contains personal data" in content
    assert "chloe.martin@example.com" not in content
    assert "unknown status value" in content


def test_it_shows_the_body_to_auditors_with_the_grant(client, auditor, hostile):
    auditor.membership.personal_data_granted = True
    auditor.membership.save()
    client.force_login(auditor)
    content = client.get(url(hostile)).content.decode()
    assert "chloe.martin@example.com" in content
    assert "Raw payload hidden" not in content


def test_it_404s_for_an_unknown_raw_event(client, reviewer, db):
    client.force_login(reviewer)
    assert client.get(reverse("raw_event_detail", args=[999])).status_code == 404
