"""manage.py import_events: JSON lines, CSV, gzip, stdin, with a summary naming bad lines."""

import gzip
import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

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


def run(*args):
    out = io.StringIO()
    call_command("import_events", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def csv_source(db):
    return save_source(slug="crm", kind="csv").source


def test_it_imports_a_csv_export_and_names_each_bad_row(csv_source, tmp_path):
    path = tmp_path / "renewals.csv"
    path.write_text(CSV, encoding="utf-8")

    output = run("crm", str(path))

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
    run("crm", str(path))
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
    assert "quarantined 3" in run("inhouse", str(path))
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

    run("crm", str(path))
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
