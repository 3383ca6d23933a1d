"""`manage.py run_checks` runs one detection pass by hand and prints what it found."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.ingest.models import Outcome
from tests.failures.test_detection_builders import bounce, import_events, store_calls

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("run_checks", *args, stdout=out)
    return out.getvalue()


def counts(output: str) -> dict[str, int]:
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            found[words[0]] = int(words[1])
    return found


def test_it_prints_new_occurrences_per_kind_and_adds_nothing_the_second_time(json_source):
    at = timezone.now() - timedelta(hours=1)
    import_events(json_source, bounce("k-1", at, "C-1") + bounce("k-2", at, "C-2"))
    store_calls(json_source, 3, outcome=Outcome.REJECTED, reason="missing or wrong bearer token")

    first = counts(run())
    second = counts(run())

    assert first == {
        "delivery_failure": 2,
        "late": 0,
        "duplicate_send": 0,
        "identity": 0,
        "mapping_break": 0,
        "silence": 0,
        "rejected_webhooks": 3,
        "woken": 0,
    }
    assert set(second.values()) == {0}
    assert FailureGroup.objects.count() == 2


def test_it_judges_at_a_given_moment(json_source):
    at = timezone.now() - timedelta(minutes=5)
    import_events(json_source, [bounce("k-1", at, "C-1")[0]])

    assert counts(run())["late"] == 0
    assert counts(run("--now", (timezone.now() + timedelta(hours=1)).isoformat()))["late"] == 1
    assert FailureGroup.objects.get().kind == Kind.LATE


def test_it_refuses_a_moment_it_cannot_read(db):
    with pytest.raises(CommandError, match="not an ISO 8601 moment"):
        run("--now", "tomorrow")


def test_a_pass_over_the_sender_fixtures_finds_every_notification_kind(imported):
    names = (
        "01_retry_503_timeout_then_delivered.jsonl",
        "02_duplicate_send_same_idempotency_key.jsonl",
        "03_missing_customer_id.jsonl",
        "05_malformed_and_edge_lines.jsonl",
        "07_send_records_for_provider_samples.jsonl",
    )
    imported(*names)
    # The fixtures are from March 2025: judge a day after them.
    output = run("--now", "2025-03-15T12:00:00+00:00")

    found = counts(output)
    assert found["duplicate_send"] == 1
    assert found["identity"] > 0
    assert found["mapping_break"] > 0
    assert found["late"] > 0
    kinds = set(FailureGroup.objects.values_list("kind", flat=True))
    assert {Kind.DUPLICATE_SEND, Kind.IDENTITY, Kind.MAPPING_BREAK, Kind.LATE} <= kinds
