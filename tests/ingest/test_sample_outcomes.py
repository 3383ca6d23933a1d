"""Every in-house and push sample, imported with the presets, gives its documented outcome."""

import json

import pytest

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.importer import import_path
from notifwatch.ingest.models import Outcome, RawEvent

pytestmark = pytest.mark.django_db


def expected_files(fixture_path, provider):
    data = json.loads(fixture_path("expected_outcomes.json").read_text())
    return [f for f in data["files"] if f["provider"] == provider]


def check(notification, expected):
    assert notification.customer_id == (expected["customer_id"] or "")
    assert notification.final_status == expected["final_status"]
    assert (notification.reason_category or None) == expected["category"]
    if expected["category"]:
        assert notification.permanent == expected["permanent"]
    assert notification.counts_as_failure == expected["counts_as_failure"]
    assert (notification.duplicate_sends > 0) == expected["is_duplicate"]
    assert bool(notification.identity_problem) == bool(expected["identity_problem"])
    if expected["recipient"] and notification.channel != "push":
        assert notification.recipient == expected["recipient"]


def test_it_gives_every_inhouse_notification_its_documented_outcome(inhouse_source, fixture_path):
    checked = 0
    for spec in expected_files(fixture_path, "inhouse"):
        import_path(inhouse_source, str(fixture_path(spec["file"])))
        for expected in spec["expected"]:
            if not expected["message_key"]:
                continue
            check(Notification.objects.get(notification_key=expected["message_key"]), expected)
            checked += 1
    assert checked == 7


def test_it_gives_every_push_notification_its_documented_outcome(push_source, fixture_path):
    for spec in expected_files(fixture_path, "push"):
        import_path(push_source, str(fixture_path(spec["file"])))
        for expected in spec["expected"]:
            check(Notification.objects.get(notification_key=expected["message_key"]), expected)
    assert Notification.objects.count() == 5


def test_it_reports_each_malformed_line_and_keeps_the_good_ones(inhouse_source, fixture_path):
    path = fixture_path("inhouse", "05_malformed_and_edge_lines.jsonl")
    spec = next(
        s
        for s in expected_files(fixture_path, "inhouse")
        if s["file"].endswith("05_malformed_and_edge_lines.jsonl")
    )
    bad_lines = {
        e["event_ref"]["line"] for e in spec["expected"] if e["final_status"] == "parse_error"
    }

    summary = import_path(inhouse_source, str(path))

    assert {p.line for p in summary.quarantined} == bad_lines
    assert all(p.reason for p in summary.quarantined)
    assert summary.blank == 2
    assert summary.ignored == 1  # the notification.rendered line
    assert summary.stored == 2
    stored = RawEvent.objects.filter(source=inhouse_source)
    assert (
        set(stored.filter(outcome=Outcome.QUARANTINED).values_list("line_number", flat=True))
        == bad_lines
    )
    assert Notification.objects.get(notification_key="tck-55120:ticket_reply:email:3").attempts == 2


def test_it_stores_nothing_new_when_the_same_file_is_imported_again(inhouse_source, fixture_path):
    paths = sorted(str(p) for p in fixture_path("inhouse").glob("*.jsonl"))
    for path in paths:
        import_path(inhouse_source, path)
    counts = (RawEvent.objects.count(), Notification.objects.count())
    events = sorted(
        Notification.objects.values_list("notification_key", "event_count", "duplicate_events")
    )

    again = [import_path(inhouse_source, path) for path in paths]

    assert sum(s.stored for s in again) == 0
    assert sum(s.duplicates for s in again) == sum(s.read for s in again)
    assert (RawEvent.objects.count(), Notification.objects.count()) == counts
    assert (
        sorted(
            Notification.objects.values_list("notification_key", "event_count", "duplicate_events")
        )
        == events
    )


def test_it_splits_one_provider_message_to_several_recipients(inhouse_source, fixture_path):
    import_path(
        inhouse_source, str(fixture_path("inhouse", "07_send_records_for_provider_samples.jsonl"))
    )

    keys = Notification.objects.filter(notification_key__startswith="ntf_AS0008:email:")

    assert sorted(keys.values_list("recipient", flat=True)) == [
        "accounts-payable@example.org",
        "chloe.martin@example.com",
        "ops-team@retired-domain.example",
    ]
