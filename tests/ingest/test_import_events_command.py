"""manage.py import_events: JSON lines, CSV, gzip, stdin, with a summary naming bad lines."""

import gzip
import io
import json
import sys
import zlib

import pytest
from django.core.management import CommandError, call_command

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import Outcome, RawEvent

pytestmark = pytest.mark.django_db

CSV = (
    "\ufeffevent_id,occurred_at,notification_key,channel,purpose,status,customer_id,recipient,refs.order_id,error_code\r\n"
    "r1,2025-03-14T09:00:00Z,renew-1,email,renewal_notice,sent,C-1,Ann@Example.com,ORD-1,\r\n"
    "r2,2025-03-14T09:05:00Z,renew-1,email,renewal_notice,bounced,C-1,Ann@Example.com,ORD-1,5.1.1\r\n"
    "r3,2025-03-14T09:06:00Z,renew-2,sms,renewal_notice,delivered,C-2,+1 (415) 555-0100,ORD-2,\r\n"
    ",,,,,,,,,\r\n"
    "r4,2025-03-14T09:07:00Z,renew-3,email,renewal_notice,delivered,C-3,x@example.com,ORD-3,,extra\r\n"
    "r5,not-a-date,renew-4,email,renewal_notice,delivered,C-4,y@example.com,ORD-4,\r\n"
)


def run(*args, status: int = 0):
    """The command's output, checking its exit status (3: some input was bad, the rest imported)."""
    out = io.StringIO()
    try:
        call_command("import_events", *args, stdout=out, stderr=io.StringIO())
    except CommandError as error:
        if error.returncode != status:
            raise
        return out.getvalue()
    assert status == 0, f"exit status 0, expected {status}"
    return out.getvalue()


@pytest.fixture
def csv_source(db):
    return save_source(slug="crm", kind="csv").source


def test_it_imports_a_csv_export_and_names_each_bad_row(csv_source, tmp_path):
    path = tmp_path / "renewals.csv"
    path.write_text(CSV, encoding="utf-8")

    output = run("crm", str(path), status=3)

    assert "read 5, stored 3, duplicates 0, ignored 0, quarantined 2, blank 1" in output
    assert "line 6: row has 11 fields, the header has 10" in output
    assert "line 7: occurred_at: 'not-a-date' is not an ISO 8601 timestamp" in output
    bounced = Notification.objects.get(notification_key="renew-1")
    assert (bounced.final_status, bounced.reason_category, bounced.recipient) == (
        "bounced",
        "invalid_address",
        "ann@example.com",
    )
    assert bounced.refs == {"order_id": "ORD-1"}
    assert Notification.objects.get(notification_key="renew-2").recipient == "+14155550100"
    assert RawEvent.objects.filter(outcome=Outcome.QUARANTINED).count() == 2


def test_it_adds_nothing_when_the_same_csv_is_imported_again(csv_source, tmp_path):
    path = tmp_path / "renewals.csv"
    path.write_text(CSV, encoding="utf-8")
    run("crm", str(path), status=3)
    raw_count = RawEvent.objects.count()

    output = run("crm", str(path))

    assert "stored 0, duplicates 5" in output
    assert RawEvent.objects.count() == raw_count


def test_it_reads_gzip_and_standard_input(inhouse_source, fixture_path, tmp_path, monkeypatch):
    source_file = fixture_path("inhouse", "01_retry_503_timeout_then_delivered.jsonl")
    packed = tmp_path / "log.jsonl.gz"
    packed.write_bytes(gzip.compress(source_file.read_bytes()))
    assert "read 3, stored 3" in run("inhouse", str(packed))

    lines = fixture_path("inhouse", "02_duplicate_send_same_idempotency_key.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(lines))))
    assert "stdin" in (output := run("inhouse", "-")) and "read 2, stored 2" in output
    assert (
        Notification.objects.get(
            notification_key="ord-119020:order_confirmation:email"
        ).duplicate_sends
        == 1
    )


def test_it_reports_an_unknown_source_or_missing_file(inhouse_source):
    with pytest.raises(CommandError, match="no source 'nope'"):
        run("nope", "x.jsonl")
    with pytest.raises(CommandError, match="no such file"):
        run("inhouse", "/does/not/exist.jsonl")


def test_it_quarantines_mapping_breaks_and_reprocesses_them_after_the_fix(inhouse_source, tmp_path):
    # Upstream renamed idempotency_key to notification_ref: every line is quarantined, none lost.
    lines = [
        {
            "ts": f"2025-03-14T10:0{n}:00Z",
            "event": "notification.attempt",
            "channel": "email",
            "template": "order_confirmation",
            "status": "delivered",
            "customer_id": f"cus_{n}",
            "notification_ref": f"ord-{n}",
            "recipient": {"email": f"c{n}@example.com"},
        }
        for n in range(3)
    ]
    path = tmp_path / "renamed.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    assert "quarantined 3" in run("inhouse", str(path), status=3)
    assert Notification.objects.count() == 0

    mapping = dict(inhouse_source.mapping)
    mapping["fields"] = {
        **mapping["fields"],
        "notification_key": ["notification_ref", "idempotency_key"],
    }
    from notifwatch.ingest.actions import set_mapping

    set_mapping(inhouse_source, mapping)
    out = io.StringIO()
    call_command("reprocess", "inhouse", stdout=out)

    assert "reprocessed 3 (parsed 3)" in out.getvalue()
    assert Notification.objects.filter(final_status="delivered").count() == 3


def test_each_imported_file_is_recorded_in_the_audit_trail(csv_source, tmp_path):
    from notifwatch.audit.models import AuditEntry

    path = tmp_path / "renewals.csv"
    path.write_text(CSV, encoding="utf-8")

    run("crm", str(path), status=3)
    run("crm", str(path))  # again: nothing new, and recorded as such

    first, second = AuditEntry.objects.filter(action="source.imported").order_by("id")
    assert first.target_id == str(csv_source.pk) and first.actor is None
    assert first.actor_label == "manage.py import_events"
    assert first.new["file"].endswith("renewals.csv")
    assert (first.new["stored"], first.new["quarantined"]) == (3, 2)
    assert (second.new["stored"], second.new["duplicates"]) == (0, 5)  # every line seen before


def test_changing_a_source_is_recorded_with_old_and_new_values(csv_source):
    from notifwatch.audit.models import AuditEntry

    save_source(slug="crm", kind="csv", name="CRM renewals export")

    entry = AuditEntry.objects.get(action="source.changed")
    assert entry.target_id == str(csv_source.pk)
    assert entry.new["name"] == "CRM renewals export"
    assert entry.old["name"] != "CRM renewals export"


def attempt(n: int, **changes) -> dict:
    """An in-house log line (the inhouse_log preset): a delivered notification of its own."""
    return {
        "ts": f"2025-03-14T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "event": "notification.attempt",
        "channel": "email",
        "provider": "sendgrid",
        "customer_id": f"cus_{n}",
        "template": "order_confirmation",
        "attempt": 1,
        "idempotency_key": f"ord-{n}:order_confirmation:email",
        "message_id": f"msg-{n:06d}-{n * 7919 % 100003:05d}",
        "recipient": {"email": f"customer{n}@example.com"},
        "status": "delivered",
        **changes,
    }


def with_extra(record: dict, extra: str) -> str:
    """The record as a JSON line with a raw `"extra": ...` member json.dumps cannot write."""
    return json.dumps(record)[:-1] + f', "extra": {extra}}}'


def quarantined_lines() -> dict[int, str]:
    return dict(
        RawEvent.objects.filter(outcome=Outcome.QUARANTINED).values_list("line_number", "reason")
    )


def test_it_imports_every_line_before_the_cut_of_a_truncated_gzip_and_says_where_it_broke(
    inhouse_source, tmp_path
):
    packed = gzip.compress(b"".join(json.dumps(attempt(n)).encode() + b"\n" for n in range(485)))
    cut = packed[: len(packed) * 3 // 4]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    complete, partial = readable.count(b"\n"), readable.rsplit(b"\n", 1)[1]
    assert 100 < complete < 485 and partial  # the cut falls inside a line
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(cut)

    output = run("inhouse", str(path), status=3)

    assert f"the gzip file is truncated after line {complete}" in output
    assert f"read {complete + 1}, stored {complete}," in output
    assert Notification.objects.count() == complete
    assert quarantined_lines() == {
        complete + 1: f"incomplete, the gzip file is truncated after line {complete}"
    }
    assert bytes(RawEvent.objects.get(outcome=Outcome.QUARANTINED).body) == partial
    audit = AuditEntry.objects.get(action="source.imported")
    assert audit.new["file_problems"] == [f"the gzip file is truncated after line {complete}"]
    raw_count = RawEvent.objects.count()

    again = run("inhouse", str(path), status=3)  # still cut: still said, nothing new stored

    assert f"stored 0, duplicates {complete + 1}," in again
    assert RawEvent.objects.count() == raw_count


def test_it_quarantines_each_unreadable_line_with_its_reason_and_imports_every_other(
    inhouse_source, tmp_path
):
    bad = [
        json.dumps(attempt(100, customer_id="\ud800")),  # a lone surrogate, as a JSON escape
        with_extra(attempt(101), "[" * 100_000 + "]" * 100_000),
        with_extra(attempt(102), "1e400"),  # infinity as a float: no JSON column holds it
        json.dumps(attempt(103, ts=1e20)),
        json.dumps(attempt(104, ts="9999-12-31T23:59:59-01:00")),
        json.dumps(attempt(105, idempotency_key="ord-105\u0000x")),
    ]
    lines = [json.dumps(attempt(0))]
    for n, line in enumerate(bad, start=1):
        lines += [line, json.dumps(attempt(n))]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")

    output = run("inhouse", str(path), status=3)

    assert "read 13, stored 7, duplicates 0, ignored 0, quarantined 6" in output
    reasons = quarantined_lines()
    assert sorted(reasons) == [2, 4, 6, 8, 10, 12] and all(reasons.values())
    assert "nested too deeply" in reasons[4]
    assert "occurred_at" in reasons[8] and "occurred_at" in reasons[10]
    for line, reason in reasons.items():
        assert f"line {line}: {reason}" in output
    assert Notification.objects.count() == 7
    raw_count = RawEvent.objects.count()

    again = run("inhouse", str(path))  # nothing new is bad: exit status 0

    assert "stored 0, duplicates 13" in again
    assert RawEvent.objects.count() == raw_count


def canonical(event_id: str, key: str, minute: int = 0) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": f"2025-03-14T10:{minute:02d}:00Z",
            "notification_key": key,
            "channel": "email",
            "status": "delivered",
            "customer_id": "C-1",
            "recipient": "pat@example.com",
        }
    )


def test_it_quarantines_an_event_id_reused_for_another_notification_and_records_the_rest_once(
    json_source, tmp_path
):
    from notifwatch.deliveries.models import DeliveryEvent

    first = tmp_path / "first.jsonl"
    first.write_text(
        "\n".join(
            [
                canonical("e-1", "inv-1"),
                canonical("e-2", "inv-2"),
                canonical("e-1", "inv-9", minute=1),  # the same event id, another notification
                canonical("e-3", "inv-3"),
            ]
        )
    )
    output = run("billing", str(first), status=3)

    assert "read 4, stored 3, duplicates 0, ignored 0, quarantined 1" in output
    assert list(quarantined_lines()) == [3] and "event_id" in quarantined_lines()[3]
    assert "'e-1'" in quarantined_lines()[3] and "line 3: event_id" in output

    second = tmp_path / "second.jsonl"
    second.write_text(canonical("e-2", "inv-2-corrected") + "\n" + canonical("e-4", "inv-4"))
    output = run("billing", str(second), status=3)

    assert "read 2, stored 1, duplicates 0, ignored 0, quarantined 1" in output
    keys = sorted(Notification.objects.values_list("notification_key", flat=True))
    assert keys == ["inv-1", "inv-2", "inv-3", "inv-4"]
    assert DeliveryEvent.objects.count() == 4
    assert not DeliveryEvent.objects.filter(duplicate_count__gt=0).exists()
    assert not Notification.objects.filter(duplicate_events__gt=0).exists()
    raw_count = RawEvent.objects.count()

    assert "stored 0, duplicates 4" in run("billing", str(first))
    assert "stored 0, duplicates 2" in run("billing", str(second))
    assert (RawEvent.objects.count(), DeliveryEvent.objects.count()) == (raw_count, 4)


def test_it_imports_the_other_files_when_one_cannot_be_opened_and_then_exits_1(
    inhouse_source, fixture_path
):
    readable = fixture_path("inhouse", "01_retry_503_timeout_then_delivered.jsonl")

    with pytest.raises(CommandError, match="missing.jsonl: no such file") as failed:
        run("inhouse", "/does/not/missing.jsonl", str(readable))

    assert failed.value.returncode == 1
    assert Notification.objects.get().final_status == "delivered"


def test_it_quarantines_a_csv_row_that_is_not_utf8_and_reads_the_rows_after_it(
    csv_source, tmp_path
):
    path = tmp_path / "renewals.csv"
    rows = CSV.encode().splitlines(keepends=True)
    broken = rows[2].replace(b"Ann@Example.com", b"Ann\xff@Example.com")
    path.write_bytes(b"".join([rows[0], rows[1], broken, *rows[3:]]))

    output = run("crm", str(path), status=3)

    assert "read 5, stored 2, duplicates 0, ignored 0, quarantined 3, blank 1" in output
    assert quarantined_lines()[3] == "not UTF-8 text"
    assert Notification.objects.get(notification_key="renew-2").final_status == "delivered"


def test_it_quarantines_the_cut_row_of_a_truncated_csv_gzip(csv_source, tmp_path):
    header = "event_id,occurred_at,notification_key,channel,status,recipient\r\n"
    rows = "".join(
        f"r{n},2025-03-14T09:00:00Z,renew-{n},email,delivered,customer{n}@example.com\r\n"
        for n in range(2000)
    )
    packed = gzip.compress((header + rows).encode())
    cut = packed[: len(packed) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    complete = readable.count(b"\n")
    assert not readable.endswith(b"\n")
    path = tmp_path / "renewals.csv.gz"
    path.write_bytes(cut)

    output = run("crm", str(path), status=3)

    assert f"the gzip file is truncated after line {complete}" in output
    assert Notification.objects.count() == complete - 1  # the header is line 1
    assert quarantined_lines() == {
        complete + 1: f"incomplete, the gzip file is truncated after line {complete}"
    }
