"""Mapping breaks (quarantined events) and rejected webhooks, from the raw events."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.failures.detection import (
    detect_mapping_breaks,
    detect_rejected_webhooks,
    normalise_message,
)
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.importer import import_lines
from notifwatch.ingest.models import Outcome, RawEvent
from tests.failures.test_detection_builders import event, import_events, store_calls

pytestmark = pytest.mark.django_db


def since():
    return timezone.now() - timedelta(days=8)


def sender_lines(fixture_path, renamed: bool) -> list[bytes]:
    """The in-house sender's log lines; `renamed`: after it renamed `ts` to `timestamp`."""
    path = fixture_path("inhouse", "07_send_records_for_provider_samples.jsonl")
    lines = []
    for n, line in enumerate(path.read_bytes().splitlines()):
        record = json.loads(line)
        record["idempotency_key"] = f"{record['idempotency_key']}:{n}:{renamed}"
        if renamed:
            record["timestamp"] = record.pop("ts")
        lines.append(json.dumps(record).encode())
    return lines


def test_it_names_the_field_and_its_share_of_the_events(inhouse_source, fixture_path):
    good = sender_lines(fixture_path, renamed=False)
    import_lines(inhouse_source, [(n, line, None) for n, line in enumerate(good, 1)], "a.jsonl")
    RawEvent.objects.update(received_at=timezone.now() - timedelta(hours=2))
    broken = (sender_lines(fixture_path, renamed=True) * 40)[:40]
    broken = [
        line.replace(b'"template"', f'"n": {n}, "template"'.encode())
        for n, line in enumerate(broken)
    ]
    import_lines(inhouse_source, [(n, line, None) for n, line in enumerate(broken, 1)], "b.jsonl")
    assert RawEvent.objects.filter(outcome=Outcome.QUARANTINED).count() == 40

    now = timezone.now()
    detect_mapping_breaks(since(), now)

    group = FailureGroup.objects.get()
    first = RawEvent.objects.filter(outcome=Outcome.QUARANTINED).earliest("received_at")
    assert group.title == (
        "`ts` missing (maps to occurred_at) in 40 of the 40 events from inhouse since it began"
    )
    assert group.first_seen == first.received_at
    assert group.kind == Kind.MAPPING_BREAK
    assert group.detail["field"] == "ts"
    assert group.detail["source"] == "inhouse"
    assert group.detail["mapping"] == "/sources/inhouse/#mapping"
    assert group.detail["first_seen"] == group.first_seen.isoformat()
    assert group.occurrences == 40


def test_messages_with_different_values_group_together(json_source):
    at = timezone.now() - timedelta(hours=1)
    import_events(
        json_source,
        [
            {**event("k-1", "sent", at), "occurred_at": "yesterday"},
            {**event("k-2", "sent", at), "occurred_at": "14/03/2025 10:02"},
            event("k-3", "sent", at),
        ],
    )

    detect_mapping_breaks(since())

    group = FailureGroup.objects.get()
    assert group.title.startswith("`occurred_at` is not an ISO 8601 timestamp in ")
    assert group.title.endswith(" in 2 of the 3 events from billing since it began")


def test_a_growing_break_keeps_its_title_current(json_source):
    at = timezone.now() - timedelta(hours=1)
    bad = [{**event(f"k-{n}", "sent", at), "status": "paid"} for n in range(3)]
    import_events(json_source, bad[:2])
    detect_mapping_breaks(since())

    import_events(json_source, bad[2:] + [event("k-9", "sent", at)], name="later.jsonl")
    detect_mapping_breaks(since())

    group = FailureGroup.objects.get()
    assert group.occurrences == 3
    assert " in 3 of the 4 events from billing since it began" in group.title


@pytest.mark.parametrize(
    "message, pattern",
    [
        ("'x' is not an ISO 8601 timestamp", "… is not an ISO 8601 timestamp"),
        ("'2025-13-01' is not an ISO 8601 timestamp", "… is not an ISO 8601 timestamp"),
        ("epoch value 99999999999999 is out of range", "epoch value N is out of range"),
        ("row has 7 fields, the header has 5", "row has N fields, the header has N"),
    ],
)
def test_values_are_taken_out_of_messages(message, pattern):
    assert normalise_message(message) == pattern


def test_it_counts_rejected_calls_per_source_and_reason(db):
    twilio = save_source(slug="twilio", kind="twilio", secret="token").source
    first_at = timezone.now() - timedelta(minutes=50)
    store_calls(twilio, 40, outcome=Outcome.REJECTED, reason="signature mismatch", at=first_at)
    store_calls(twilio, 3, outcome=Outcome.REJECTED, reason="signature mismatch")
    store_calls(twilio, 5, outcome=Outcome.PARSED)

    now = timezone.now()
    detect_rejected_webhooks(since(), now)

    group = FailureGroup.objects.get()
    assert group.kind == Kind.REJECTED_WEBHOOKS
    assert group.title == "Twilio: 43 rejected calls, last reason: signature mismatch"
    assert group.first_seen == first_at
    assert (group.source, group.occurrences, group.fix_owner) == (twilio, 43, "our_setup")

    store_calls(twilio, 2, outcome=Outcome.REJECTED, reason="signature mismatch")
    store_calls(twilio, 1, outcome=Outcome.REJECTED, reason="missing X-Twilio-Signature header")
    detect_rejected_webhooks(since(), now)
    assert not detect_rejected_webhooks(since(), now)

    titles = sorted(FailureGroup.objects.values_list("title", flat=True))
    assert titles == [
        "Twilio: 1 rejected call, last reason: missing X-Twilio-Signature header",
        "Twilio: 45 rejected calls, last reason: signature mismatch",
    ]
