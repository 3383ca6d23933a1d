import io
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifwatch.accounts.masking import mask_recipient, mask_text
from notifwatch.audit.actions import record_audit
from notifwatch.audit.exports import (
    EXPORT_KINDS,
    ExportError,
    UnknownSource,
    csv_safe,
    parse_when,
    rows,
    write_csv,
    write_jsonl,
)
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification

from . import (
    FORMULA,
    NO_CUSTOMER_EMAIL_KEY,
    NO_CUSTOMER_PUSH_KEY,
    NO_CUSTOMER_SMS_KEY,
    RETRY_KEY,
    UNREGISTERED_KEY,
    by_key,
    import_lines,
    import_samples,
    inhouse_line,
    many_notifications,
    parse_csv,
    parse_jsonl,
)

NOTIFICATION_HEADER = [
    "source",
    "notification_key",
    "channel",
    "purpose",
    "customer_id",
    "recipient",
    "refs",
    "final_status",
    "reason_category",
    "readable_reason",
    "fix_owner",
    "permanent",
    "counts_as_failure",
    "attempts",
    "duplicate_sends",
    "identity_problem",
    "first_event_at",
    "settled_at",
    "exception_ids",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "suggested_action",
    "last_event_at",
]
EVENT_HEADER = [
    "source",
    "notification_key",
    "event_id",
    "event_type",
    "occurred_at",
    "received_at",
    "attempt",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "reason_category",
    "permanent",
    "duplicate_count",
]
AUDIT_HEADER = [
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "old",
    "new",
    "detail",
]

UNREGISTERED_SENTENCE = "The app is no longer installed or registered on the customer's device."


@pytest.fixture
def samples(inhouse_source, push_source):
    import_samples(inhouse_source, push_source)


def export(kind="notifications", fmt="csv", **filters) -> list[dict]:
    header, data = rows(kind, **filters)
    out = io.StringIO(newline="")
    written = (write_csv if fmt == "csv" else write_jsonl)(header, data, out)
    records = parse_csv(out.getvalue()) if fmt == "csv" else parse_jsonl(out.getvalue())
    assert written == len(records)
    return records


def test_kinds_are_the_ones_of_the_contract():
    assert EXPORT_KINDS == ("notifications", "events", "exceptions", "audit")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "header"),
    [("notifications", NOTIFICATION_HEADER), ("events", EVENT_HEADER), ("audit", AUDIT_HEADER)],
)
def test_header_is_the_documented_one(kind, header):
    assert rows(kind)[0] == header
    out = io.StringIO(newline="")
    write_csv(*rows(kind), out)
    assert out.getvalue() == ",".join(header) + "\r\n"


@pytest.mark.django_db
def test_the_contract_columns_come_first_in_their_order():
    contract = NOTIFICATION_HEADER[: NOTIFICATION_HEADER.index("exception_ids") + 1]
    assert rows("notifications")[0][: len(contract)] == contract


@pytest.mark.django_db
def test_unknown_kind_and_source_are_refused():
    with pytest.raises(ExportError, match="unknown export 'reviews'"):
        rows("reviews")
    with pytest.raises(UnknownSource, match="no source 'nope'"):
        rows("notifications", source_slug="nope")


def test_rows_is_a_lazy_iterator(samples, django_assert_num_queries, django_assert_max_num_queries):
    with django_assert_num_queries(0):
        header, data = rows("notifications")
    assert isinstance(data, Iterator)
    assert not isinstance(data, list | tuple)
    with closing(data):
        with django_assert_max_num_queries(2):  # the select (and on PostgreSQL a savepoint)
            first = next(data)
        assert len(first) == len(header)


def test_one_row_per_notification_in_plain_words(samples):
    records = by_key(export(show_personal_data=True))
    assert len(records) == 5

    retried = records[RETRY_KEY]
    assert retried["source"] == "inhouse"
    assert retried["channel"] == "email"
    assert retried["purpose"] == "order_confirmation"
    assert retried["customer_id"] == "cus_11690"
    assert retried["recipient"] == "chloe.martin@example.com"
    assert retried["refs"] == '{"order_id":"ORD-2025-119001"}'
    assert retried["final_status"] == "delivered"
    assert retried["reason_category"] == ""
    assert retried["readable_reason"] == ""
    assert retried["fix_owner"] == ""
    assert retried["permanent"] == ""
    assert retried["counts_as_failure"] == "false"
    assert retried["attempts"] == "3"
    assert retried["duplicate_sends"] == "0"
    assert retried["identity_problem"] == ""
    assert retried["first_event_at"] == "2025-03-14T10:00:00.120000Z"
    assert retried["settled_at"] == "2025-03-14T10:01:31.052000Z"
    assert retried["last_event_at"] == "2025-03-14T10:01:31.052000Z"
    assert retried["exception_ids"] == ""
    assert retried["provider_message_id"] == "mFNYICIKGC3gPNGqOvZMVF"

    unregistered = records[UNREGISTERED_KEY]
    assert unregistered["source"] == "push"
    assert unregistered["final_status"] == "failed"
    assert unregistered["reason_category"] == "device_token_invalid"
    assert unregistered["readable_reason"] == UNREGISTERED_SENTENCE
    assert unregistered["suggested_action"].startswith("Remove this device")
    assert unregistered["fix_owner"] == "recipient_data"
    assert unregistered["permanent"] == "true"
    assert unregistered["counts_as_failure"] == "true"
    assert unregistered["error_code"] == "UNREGISTERED"
    assert unregistered["error_message"] == "Requested entity was not found."
    assert unregistered["settled_at"] == "2025-03-14T15:40:00Z"

    no_customer = records[NO_CUSTOMER_EMAIL_KEY]
    assert no_customer["customer_id"] == ""
    assert no_customer["identity_problem"] == "missing_customer_id"
    assert no_customer["final_status"] == "delivered"
    assert no_customer["counts_as_failure"] == "false"

    sms = records[NO_CUSTOMER_SMS_KEY]
    assert sms["identity_problem"] == "missing_customer_id"
    assert sms["final_status"] == "failed"
    assert sms["reason_category"] == "landline_or_unreachable"
    assert sms["readable_reason"] != ""
    assert sms["permanent"] == "true"
    assert sms["counts_as_failure"] == "true"
    assert sms["refs"] == '{"ticket_id":"TCK-55190"}'

    push = records[NO_CUSTOMER_PUSH_KEY]
    assert push["final_status"] == "pending"
    assert push["identity_problem"] == "missing_customer_id"
    assert push["settled_at"] == ""


def test_jsonl_keeps_json_types(samples):
    records = by_key(export(fmt="jsonl", show_personal_data=True))
    retried = records[RETRY_KEY]
    assert list(retried) == NOTIFICATION_HEADER
    assert retried["refs"] == {"order_id": "ORD-2025-119001"}
    assert retried["permanent"] is None
    assert retried["counts_as_failure"] is False
    assert retried["attempts"] == 3
    assert retried["exception_ids"] == []
    assert retried["settled_at"] == "2025-03-14T10:01:31.052000Z"
    unregistered = records[UNREGISTERED_KEY]
    assert unregistered["permanent"] is True
    assert unregistered["readable_reason"] == UNREGISTERED_SENTENCE


def test_recipients_are_masked_by_default(samples):
    for fmt in ("csv", "jsonl"):
        records = by_key(export(fmt=fmt))
        assert records[RETRY_KEY]["recipient"] == "c•••@example.com"
        assert records[NO_CUSTOMER_PUSH_KEY]["recipient"] == "dev•••"
        sms = records[NO_CUSTOMER_SMS_KEY]
        # A phone number starts with "+": in CSV it is neutralised like any formula start.
        assert sms["recipient"] == ("'+1•••••0118" if fmt == "csv" else "+1•••••0118")
        # Providers quote the recipient in their messages; that is masked too.
        assert "+14155550118" not in sms["error_message"]
        assert "+1•••••0118" in sms["error_message"]
        # Business references are not personal data.
        assert "ORD-2025-119001" in str(records[RETRY_KEY]["refs"])


def test_recipients_are_shown_when_asked(samples):
    records = by_key(export(fmt="jsonl", show_personal_data=True))
    assert records[RETRY_KEY]["recipient"] == "chloe.martin@example.com"
    assert records[NO_CUSTOMER_SMS_KEY]["recipient"] == "+14155550118"
    assert "+14155550118" in records[NO_CUSTOMER_SMS_KEY]["error_message"]


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("chloe.martin@example.com", "c•••@example.com"),
        ("Chloe Martin <chloe.martin@example.com>", "c•••@example.com"),
        ("+14155550118", "+1•••••0118"),
        ("+44 20 7946 0958", "+44•••••0958"),
        ("whatsapp:+14155550118", "whatsapp:+1•••••0118"),
        ("dev_ccffd0b670", "dev•••"),
        ("abc", "•••"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_recipient(value, masked):
    assert mask_recipient(value) == masked


def test_mask_text_masks_addresses_and_numbers_inside_messages():
    text = "550 5.1.1 <ana.ruiz@example.com>: no such user; To +14155550118 rejected (503)"
    assert mask_text(text) == (
        "550 5.1.1 <a•••@example.com>: no such user; To +1•••••0118 rejected (503)"
    )


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        (FORMULA, "'" + FORMULA),
        ("+1•••••0118", "'+1•••••0118"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("order_confirmation", "order_confirmation"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_csv_safe(value, safe):
    assert csv_safe(value) == safe


def test_formulas_arrive_as_text_in_csv_and_verbatim_in_jsonl(inhouse_source, tmp_path):
    line = inhouse_line(
        idempotency_key="evil-1",
        template=FORMULA,
        status="failed",
        message_id=None,
        error={"type": "provider_error", "code": "-1+2", "message": FORMULA},
    )
    import_lines(inhouse_source, tmp_path, "evil.jsonl", [line])

    (csv_row,) = export()
    assert csv_row["purpose"] == "'" + FORMULA
    assert csv_row["error_message"] == "'" + FORMULA
    assert csv_row["error_code"] == "'-1+2"
    assert csv_row["attempts"] == "3"  # numbers we produce are left alone
    (event,) = export("events")
    assert event["error_message"] == "'" + FORMULA
    assert event["error_code"] == "'-1+2"

    (json_row,) = export(fmt="jsonl")
    assert json_row["purpose"] == FORMULA
    assert json_row["error_message"] == FORMULA
    assert json_row["error_code"] == "-1+2"
    (json_event,) = export("events", fmt="jsonl")
    assert json_event["error_message"] == FORMULA


def test_events_one_row_per_event(samples):
    records = export("events", source_slug="inhouse")
    retried = [r for r in records if r["notification_key"] == RETRY_KEY]
    assert [r["attempt"] for r in retried] == ["1", "2", "3"]
    assert [r["event_type"] for r in retried] == ["deferred", "deferred", "delivered"]
    assert retried[0]["source"] == "inhouse"
    assert retried[0]["occurred_at"] == "2025-03-14T10:00:00.120000Z"
    assert retried[0]["received_at"].endswith("Z")
    assert retried[0]["error_code"] == "503"
    assert retried[0]["reason_category"] == "provider_outage_transient"
    assert retried[0]["permanent"] == "false"
    assert retried[0]["duplicate_count"] == "0"
    assert retried[2]["reason_category"] == ""
    assert retried[2]["permanent"] == ""
    sms = [r for r in records if r["notification_key"] == NO_CUSTOMER_SMS_KEY]
    assert "+14155550118" not in sms[0]["error_message"]


def test_since_until_and_source_filters(samples):
    everything = export()
    assert len(everything) == 5
    # until is exclusive, since inclusive, on the last event.
    settled = datetime(2025, 3, 14, 10, 1, 31, 52000, tzinfo=UTC)
    assert {r["notification_key"] for r in export(until=settled)} == set()
    assert RETRY_KEY in {r["notification_key"] for r in export(since=settled)}
    later = export(since=datetime(2025, 3, 14, 11, 0, tzinfo=UTC))
    assert RETRY_KEY not in {r["notification_key"] for r in later}
    assert len(later) == 4
    window = export(
        since=datetime(2025, 3, 14, 11, 0, tzinfo=UTC),
        until=datetime(2025, 3, 14, 12, 0, tzinfo=UTC),
    )
    assert {r["notification_key"] for r in window} == {
        NO_CUSTOMER_EMAIL_KEY,
        NO_CUSTOMER_SMS_KEY,
        NO_CUSTOMER_PUSH_KEY,
    }
    push = export(source_slug="push")
    assert [r["notification_key"] for r in push] == [UNREGISTERED_KEY]
    assert {r["source"] for r in export(source_slug="inhouse")} == {"inhouse"}

    events = export("events", since=datetime(2025, 3, 14, 10, 0, 40, tzinfo=UTC))
    assert RETRY_KEY in {r["notification_key"] for r in events}
    assert len([r for r in events if r["notification_key"] == RETRY_KEY]) == 2
    assert export("events", source_slug="push", until=datetime(2025, 3, 14, tzinfo=UTC)) == []


def test_writers_close_the_rows_when_writing_fails(inhouse_source, tmp_path):
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(30))
    in_atomic = connection.in_atomic_block

    class Full(io.StringIO):
        def write(self, text):
            if self.tell() > 1000:
                raise OSError("disk full")
            return super().write(text)

    for writer in (write_csv, write_jsonl):
        header, data = rows("notifications", chunk_size=10)
        with pytest.raises(OSError, match="disk full"):
            writer(header, data, Full())
        assert data.gi_frame is None  # closed, not left to the garbage collector
        assert connection.in_atomic_block == in_atomic


def test_rows_come_oldest_first(samples):
    stamps = [r["last_event_at"] for r in export()]
    assert stamps == sorted(stamps)


def test_audit_rows(samples, push_source, admin_user):
    record_audit(
        actor=admin_user,
        action="source.updated",
        target=push_source,
        old={"name": "Push"},
        new={"name": FORMULA},
        detail="renamed",
    )
    records = export("audit")
    # Creating the two sources was recorded first.
    assert [r["action"] for r in records] == ["source.created", "source.created", "source.updated"]
    entry = records[-1]
    assert entry["actor"] == "alice"
    assert entry["action"] == "source.updated"
    assert entry["target_type"] == "ingest.source"
    assert entry["target_id"] == str(push_source.pk)
    assert entry["old"] == '{"name":"Push"}'
    assert entry["new"] == '{"name":"=HYPERLINK(\\"http://x\\",\\"y\\")"}'
    assert entry["detail"] == "renamed"
    assert entry["at"].endswith("Z")

    as_json = export("audit", fmt="jsonl")[-1]
    assert as_json["new"] == {"name": FORMULA}
    assert as_json["old"] == {"name": "Push"}

    about_push = export("audit", source_slug="push")
    assert [r["action"] for r in about_push] == ["source.created", "source.updated"]
    assert [r["action"] for r in export("audit", source_slug="inhouse")] == ["source.created"]
    assert export("audit", since=datetime(2999, 1, 1, tzinfo=UTC)) == []


def test_audit_entries_without_values_have_empty_cells(db):
    AuditEntry.objects.create(
        actor_label="system", action="x.y", target_type="export", target_id="audit"
    )
    (entry,) = export("audit")
    assert entry["old"] == "" and entry["new"] == ""
    (as_json,) = export("audit", fmt="jsonl")
    assert as_json["old"] is None


@pytest.mark.parametrize("kind", ["notifications", "events"])
def test_query_count_does_not_grow_with_rows(kind, inhouse_source, tmp_path):
    import_lines(inhouse_source, tmp_path, "few.jsonl", many_notifications(10))

    def queries_for_export(**filters) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            header, data = rows(kind, chunk_size=50, **filters)
            written = write_csv(header, data, io.StringIO())
        return len(queries), written

    few, written = queries_for_export(source_slug="inhouse")
    assert written == 10
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(200)[10:])
    many, written = queries_for_export(source_slug="inhouse")
    assert written == 200
    assert many == few <= 4  # source lookup, and the export's single select


def test_export_of_200_notifications_in_bounded_queries(
    inhouse_source, tmp_path, django_assert_max_num_queries
):
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(200))
    with django_assert_max_num_queries(3):
        header, data = rows("notifications", chunk_size=50)
        assert write_jsonl(header, data, io.StringIO()) == 200


def test_stopping_early_leaves_the_connection_usable(inhouse_source, tmp_path):
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(30))
    in_atomic = connection.in_atomic_block
    header, data = rows("notifications", chunk_size=10)
    with closing(data):
        assert next(data)[1] == "bulk-00000:order_confirmation:email"
    assert connection.in_atomic_block == in_atomic
    assert Notification.objects.count() == 30
    assert len(list(rows("notifications", chunk_size=10)[1])) == 30


@pytest.mark.django_db(transaction=True)
def test_it_streams_inside_a_transaction(inhouse_source, tmp_path):
    """In autocommit a PostgreSQL cursor WITH HOLD materialises the whole result first."""
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(30))
    assert connection.get_autocommit()
    header, data = rows("notifications", chunk_size=10)
    with closing(data):
        next(data)
        # Only PostgreSQL needs the transaction (SQLite reads lazily either way).
        assert connection.in_atomic_block == (connection.vendor == "postgresql")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT is_holdable FROM pg_cursors")
                assert cursor.fetchall() == [(False,)]
    assert not connection.in_atomic_block


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-14", datetime(2025, 3, 14, tzinfo=UTC)),
        ("2025-03-14T10:00:00Z", datetime(2025, 3, 14, 10, tzinfo=UTC)),
        ("2025-03-14T12:00:00+02:00", datetime(2025, 3, 14, 10, tzinfo=UTC)),
        ("2025-03-14T10:00", datetime(2025, 3, 14, 10, tzinfo=UTC)),
    ],
)
def test_parse_when(text, expected):
    assert parse_when(text) == expected
    assert parse_when(text).tzinfo is UTC


@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "14/03/2025", ""])
def test_parse_when_refuses_what_is_not_iso(text):
    with pytest.raises(ExportError, match="is not an ISO 8601 date"):
        parse_when(text)
