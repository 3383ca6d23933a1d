"""Field mappings and canonical coercion, without a database."""

from datetime import UTC, datetime

import pytest

from notifwatch.ingest.canonical import FieldProblem, normalise_recipient, parse_occurred_at
from notifwatch.ingest.mapping import Ignored, Mapping, MappingError, validate_mapping

MAPPING = {
    "accept": {"path": "kind", "values": ["send"]},
    "fields": {
        "occurred_at": "meta.at",
        "notification_key": ["id", "legacy_id"],
        "status": "result",
        "channel": {"const": "sms"},
        "error_code": "errors.0.code",
        "recipient": "to",
        "refs": {"order_id": "order.number"},
    },
    "values": {"status": {"OK": "delivered", "later": "deferred", "skip": "ignore"}},
}


def record(**overrides):
    base = {
        "kind": "send",
        "meta": {"at": "2025-03-14T10:00:00Z"},
        "id": "n-1",
        "result": "ok",
        "errors": [{"code": 30003}],
        "to": "(415) 555-0118",
        "order": {"number": "O-9"},
    }
    return {**base, **overrides}


def test_it_reads_dotted_paths_array_items_constants_and_value_maps():
    [event] = Mapping(MAPPING).apply(record(), "fallback")
    assert event.notification_key == "n-1"
    assert event.status == "delivered"
    assert event.channel == "sms"
    assert event.error_code == "30003"
    assert event.recipient == "+14155550118"
    assert event.refs == {"order_id": "O-9"}
    assert event.event_id == "fallback"


def test_it_takes_the_first_present_path_of_a_list():
    [event] = Mapping(MAPPING).apply(record(id=None, legacy_id="old-7"), "f")
    assert event.notification_key == "old-7"


def test_it_ignores_records_of_another_kind_but_not_records_missing_the_kind_field():
    with pytest.raises(Ignored):
        Mapping(MAPPING).apply(record(kind="render"), "f")
    without_kind = record()
    del without_kind["kind"]
    assert Mapping(MAPPING).apply(without_kind, "f")


def test_it_ignores_a_status_mapped_to_ignore():
    with pytest.raises(Ignored):
        Mapping(MAPPING).apply(record(result="skip"), "f")


def test_it_names_the_source_field_when_a_value_is_bad():
    with pytest.raises(FieldProblem) as problem:
        Mapping(MAPPING).apply(record(meta={"at": "yesterday"}), "f")
    assert problem.value.field == "meta.at"
    assert "ISO 8601" in problem.value.message

    with pytest.raises(FieldProblem) as problem:
        Mapping(MAPPING).apply(record(result="exploded"), "f")
    assert problem.value.field == "result"
    assert "unknown status value 'exploded'" in problem.value.message


def test_it_quarantines_a_renamed_key_field():
    renamed = record()
    renamed["notification_id"] = renamed.pop("id")
    with pytest.raises(FieldProblem) as problem:
        Mapping(MAPPING).apply(renamed, "f")
    assert problem.value.field == "id or legacy_id"


def test_it_rejects_malformed_mapping_documents_with_readable_errors():
    with pytest.raises(MappingError, match="not a canonical field"):
        validate_mapping({"fields": {"customer": "c"}})
    with pytest.raises(MappingError, match="may only translate"):
        validate_mapping({"values": {"purpose": {}}})
    with pytest.raises(MappingError, match="path"):
        validate_mapping({"fields": {"status": 5}})


def test_it_accepts_canonical_records_without_a_mapping():
    [event] = Mapping(None).apply(
        {
            "event_id": "e1",
            "occurred_at": 1741946400,
            "notification_key": "k",
            "status": "DELIVERED",
            "channel": "EMAIL",
            "recipient": "  Ana.Ruiz@Example.COM ",
            "attempt": "2",
        },
        "f",
    )
    assert (event.event_id, event.status, event.channel, event.attempt) == (
        "e1",
        "delivered",
        "email",
        2,
    )
    assert event.recipient == "ana.ruiz@example.com"


def test_it_turns_a_retryable_failure_into_a_deferral():
    [event] = Mapping(None).apply(
        {
            "occurred_at": "2025-03-14T10:00:00Z",
            "notification_key": "k",
            "status": "failed",
            "retryable": True,
        },
        "f",
    )
    assert event.status == "deferred"


def test_it_reads_epoch_seconds_and_milliseconds_and_offsets():
    expected = datetime(2025, 3, 14, 11, 10, tzinfo=UTC)
    assert parse_occurred_at(1741950600) == expected
    assert parse_occurred_at(1741950600000) == expected
    assert parse_occurred_at("2025-03-14T12:10:00+01:00") == expected


def test_it_normalises_recipients():
    assert normalise_recipient(" Jonas.Berg@Example.ORG", "email") == "jonas.berg@example.org"
    assert normalise_recipient("+1 415-555-0118", "sms") == "+14155550118"
    assert normalise_recipient("dev_ccffd0b670", "push") == "dev_ccffd0b670"
