import io
import os
import stat

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifwatch.audit.models import AuditEntry

from . import (
    FORMULA,
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


@pytest.fixture
def samples(inhouse_source, push_source):
    import_samples(inhouse_source, push_source)


def run(*args, stdout=None) -> str:
    out = stdout if stdout is not None else io.StringIO()
    call_command("export", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue() if stdout is None else ""


def exports() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="export.downloaded").order_by("id"))


def test_csv_on_standard_output_with_recipients_masked(samples):
    text = run("notifications")
    assert text.startswith("source,notification_key,channel,purpose,customer_id,recipient,refs,")
    records = by_key(parse_csv(text))
    assert len(records) == 5
    assert records[RETRY_KEY]["recipient"] == "c•••@example.com"
    assert records[RETRY_KEY]["final_status"] == "delivered"
    assert records[UNREGISTERED_KEY]["reason_category"] == "device_token_invalid"
    assert records[UNREGISTERED_KEY]["readable_reason"] == (
        "The app is no longer installed or registered on the customer's device."
    )
    assert "chloe.martin@example.com" not in text
    assert "4155550118" not in text


def test_personal_data_only_when_asked(samples):
    records = by_key(parse_jsonl(run("notifications", "--format", "jsonl", "--show-personal-data")))
    assert records[RETRY_KEY]["recipient"] == "chloe.martin@example.com"
    assert records[NO_CUSTOMER_SMS_KEY]["recipient"] == "+14155550118"
    assert exports()[0].new["show_personal_data"] is True


def test_jsonl_one_object_per_line(samples):
    lines = run("notifications", "--format=jsonl").splitlines()
    assert len(lines) == 5
    records = by_key(parse_jsonl("\n".join(lines)))
    assert records[UNREGISTERED_KEY]["permanent"] is True
    assert records[RETRY_KEY]["recipient"] == "c•••@example.com"


def test_formula_neutralised_in_csv_verbatim_in_jsonl(inhouse_source, tmp_path):
    line = inhouse_line(idempotency_key="evil-1", template=FORMULA)
    import_lines(inhouse_source, tmp_path, "evil.jsonl", [line])
    (row,) = parse_csv(run("notifications"))
    assert row["purpose"] == "'" + FORMULA
    (record,) = parse_jsonl(run("notifications", "--format", "jsonl"))
    assert record["purpose"] == FORMULA


def test_events_and_audit(samples):
    events = parse_csv(run("events", "--source", "inhouse"))
    assert len(events) == 6  # three attempts, and three single-event notifications
    assert {e["source"] for e in events} == {"inhouse"}
    trail = parse_csv(run("audit"))
    # The audit export shows the earlier export run, not itself.
    assert [e["action"] for e in trail][-1] == "export.downloaded"
    assert len([e for e in trail if e["action"] == "export.downloaded"]) == 1


def test_output_file(samples, tmp_path):
    target = tmp_path / "notifications.csv"
    err = io.StringIO()
    out = io.StringIO()
    call_command("export", "notifications", "--output", str(target), stdout=out, stderr=err)
    assert out.getvalue() == ""
    assert "5 notifications rows written" in err.getvalue()
    records = parse_csv(target.read_text(encoding="utf-8"))
    assert len(records) == 5
    # Personal data even when masked: only the person who ran the export can read the file.
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["notifications.csv"]
    assert exports()[0].new["output"] == str(target)


def test_output_file_in_missing_directory(samples, tmp_path):
    with pytest.raises(CommandError, match="--output: no directory"):
        run("notifications", "--output", str(tmp_path / "nope" / "x.csv"))
    assert exports() == []


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["2025-13-01", "last week", "14/03/2025"])
def test_bad_dates_are_refused(db, option, value):
    with pytest.raises(CommandError, match=f"{option}: '{value}' is not an ISO 8601 date"):
        run("notifications", option, value)
    assert exports() == []


def test_since_must_come_before_until(db):
    with pytest.raises(CommandError, match="--since must be earlier than --until"):
        run("events", "--since", "2025-03-15", "--until", "2025-03-14")


def test_unknown_source_is_refused(samples):
    with pytest.raises(CommandError, match="no source 'nope' \\(known: inhouse, push\\)"):
        run("notifications", "--source", "nope")
    assert exports() == []


def test_unknown_kind_is_refused(db):
    with pytest.raises(CommandError, match="invalid choice: 'reviews'"):
        run("reviews")


def test_filters(samples):
    assert len(parse_csv(run("notifications", "--source", "push"))) == 1
    assert len(parse_csv(run("notifications", "--since", "2025-03-14T11:00:00Z"))) == 4
    window = ("--since", "2025-03-14T11:00:00+00:00", "--until", "2025-03-14T12:00:00Z")
    assert len(parse_csv(run("notifications", *window))) == 3
    assert parse_csv(run("notifications", "--until", "2025-03-14")) == []
    assert len(parse_csv(run("events", "--since", "2025-03-14", "--until", "2025-03-15"))) == 7


def test_a_date_alone_means_midnight_utc(inhouse_source, tmp_path, settings):
    settings.TIME_ZONE = "America/New_York"
    lines = [
        inhouse_line(idempotency_key="late-on-the-14th", ts="2025-03-14T23:30:00Z"),
        inhouse_line(idempotency_key="early-on-the-15th", ts="2025-03-15T00:30:00Z"),
    ]
    import_lines(inhouse_source, tmp_path, "midnight.jsonl", lines)
    (row,) = parse_csv(run("notifications", "--since", "2025-03-15"))
    assert row["notification_key"] == "early-on-the-15th"
    (row,) = parse_csv(run("notifications", "--until", "2025-03-15"))
    assert row["notification_key"] == "late-on-the-14th"


def test_each_run_is_audited_with_its_row_count(samples, push_source):
    run("notifications", "--since", "2025-03-14", "--format", "jsonl")
    run("events", "--source", "push")
    everything, push_only = exports()

    assert everything.actor is None
    assert everything.actor_label == "manage.py export"
    assert (everything.target_type, everything.target_id) == ("export", "notifications")
    assert everything.new == {
        "kind": "notifications",
        "format": "jsonl",
        "filters": {"since": "2025-03-14T00:00:00Z", "until": None, "source": None},
        "rows": 5,
        "show_personal_data": False,
        "output": "stdout",
        "completed": True,
    }

    assert (push_only.target_type, push_only.target_id) == ("ingest.source", str(push_source.pk))
    assert push_only.new["kind"] == "events"
    assert push_only.new["filters"]["source"] == "push"
    assert push_only.new["rows"] == 1


def test_a_reader_that_goes_away_is_audited_too(inhouse_source, tmp_path):
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(30))

    class ClosedAfterTenLines(io.StringIO):
        def write(self, text):
            if self.getvalue().count("\n") >= 10:
                raise BrokenPipeError
            return super().write(text)

    in_atomic = connection.in_atomic_block
    run("notifications", stdout=ClosedAfterTenLines())
    assert connection.in_atomic_block == in_atomic
    (entry,) = exports()
    assert entry.new["completed"] is False
    assert 9 <= entry.new["rows"] <= 10


def test_queries_do_not_grow_with_rows(inhouse_source, tmp_path, django_assert_max_num_queries):
    import_lines(inhouse_source, tmp_path, "few.jsonl", many_notifications(10))
    with CaptureQueriesContext(connection) as few:
        assert len(parse_csv(run("notifications"))) == 10
    import_lines(inhouse_source, tmp_path, "many.jsonl", many_notifications(200)[10:])
    with django_assert_max_num_queries(6) as many:
        assert len(parse_csv(run("notifications"))) == 200
    assert len(many) == len(few)
    assert exports()[-1].new["rows"] == 200


def test_it_writes_straight_into_what_is_not_a_regular_file(db, tmp_path):
    """A named pipe (or /dev/null) is written to, never replaced by a file of the same name."""
    import os
    import stat
    import threading

    from django.core.management import call_command

    pipe = tmp_path / "export.pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()))
    reader.start()

    call_command("export", "audit", "--output", str(pipe))

    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert received and received[0].startswith("at,actor,action")
