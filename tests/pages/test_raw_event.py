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


# A megabyte planted in a field by anyone with a source token: one run of address characters
# (quadratic for the old masking, which ran a page for a minute until its worker was killed).
PLANTED = "for ana.ruiz@example.com: " + "+1" * 500_000


@pytest.fixture
def planted(json_source) -> RawEvent:
    """Quarantined: a batch of 150 unreadable items, the first quoting a megabyte."""
    body = json.dumps({"event_id": "e1", "notification_key": "k1", "status": "sent"}).encode()
    raw = process_raw_event(store_raw(json_source, Transport.API, body))
    assert raw.outcome == Outcome.QUARANTINED
    # As long as a reason got before they were cut when stored: pages must not depend on that.
    problems = [{"index": n, "field": "attempt", "message": PLANTED} for n in range(150)]
    RawEvent.objects.filter(pk=raw.pk).update(reason=PLANTED, problems=problems)
    return raw


def test_it_shows_a_viewer_the_masked_start_of_a_megabyte_reason(client, viewer, planted):
    client.force_login(viewer)
    content = client.get(url(planted)).content.decode()
    assert "ana.ruiz@example.com" not in content
    # The reason and the first 100 problems; each run is left out whole, not cut in two.
    assert content.count("for a•••@example.com: … [1,000,001 more characters not shown]") == 101
    assert "+1+1" not in content
    assert "The first 100 are listed; 50 more are not shown." in content
    assert len(content) < 100_000
    source_page = client.get(reverse("source_detail", args=["billing"])).content.decode()
    assert "for a•••@example.com: … [1,000,001 more characters not shown]" in source_page
    assert "ana.ruiz" not in source_page and len(source_page) < 100_000


def test_it_shows_a_reviewer_the_start_of_a_megabyte_reason(client, reviewer, planted):
    client.force_login(reviewer)
    content = client.get(url(planted)).content.decode()
    assert "<strong>for ana.ruiz@example.com: +1+1" in content
    assert "more characters not shown]</strong>" in content
    assert len(content) < 500_000
