"""The exceptions export, and the exception ids in the notifications export."""

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from notifwatch.accounts.models import Team
from notifwatch.audit.exports import rows, write_csv, write_jsonl
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.failures.actions import assign, merge, set_status
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.ingest.actions import save_source
from tests.exceptions.data import (
    bounce,
    bounced_order_confirmations,
    failure_problems,
    record_failures,
    send,
    simple_problem,
)

from . import FORMULA, parse_csv, parse_jsonl

EXCEPTION_HEADER = [
    "exception_id",
    "kind",
    "status",
    "title",
    "readable_reason",
    "suggested_action",
    "fix_owner",
    "source",
    "channel",
    "purpose",
    "reason_category",
    "team",
    "assignee",
    "customers_affected",
    "customers_reached_anyway",
    "customers_not_reached",
    "occurrences",
    "first_seen",
    "last_seen",
    "resolved_at",
    "snoozed_until",
    "merged_into",
    "url",
]
INVALID_ADDRESS = "The email address does not exist at the recipient's provider."


@pytest.fixture
def bounced(json_source) -> FailureGroup:
    """Order confirmations bounced for three customers; cus_2 got it by SMS anyway."""
    return bounced_order_confirmations(json_source)


def export(kind="exceptions", fmt="csv", **filters) -> list[dict]:
    header, data = rows(kind, **filters)
    out = io.StringIO(newline="")
    (write_csv if fmt == "csv" else write_jsonl)(header, data, out)
    return parse_csv(out.getvalue()) if fmt == "csv" else parse_jsonl(out.getvalue())


def silence(n: int, fingerprint: str = "", **kwargs) -> FailureGroup:
    """An exception with no notification behind it: a silent hour at `n` o'clock."""
    problem = simple_problem(fingerprint or f"quiet-{n}", n, **kwargs)
    (pk,) = record_problems([problem], rule="tests")
    return FailureGroup.objects.get(pk=pk)


@pytest.mark.django_db
def test_the_header_is_the_documented_one():
    assert rows("exceptions")[0] == EXCEPTION_HEADER
    out = io.StringIO(newline="")
    write_csv(*rows("exceptions"), out)
    assert out.getvalue() == ",".join(EXCEPTION_HEADER) + "\r\n"


def test_it_has_one_row_per_exception_in_plain_words(bounced, admin_user, settings):
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example.com"
    team = Team.objects.create(name="CRM admins")
    assign(bounced, team=team, assignee=admin_user, actor=admin_user)

    (row,) = export()
    assert row["exception_id"] == str(bounced.pk)
    assert row["kind"] == "delivery_failure"
    assert row["status"] == "assigned"
    assert row["title"] == "Order confirmation email: invalid_address"
    assert row["readable_reason"] == INVALID_ADDRESS
    assert (
        row["suggested_action"] == "Correct the customer's email address in the CRM, then resend."
    )
    assert row["fix_owner"] == "recipient_data"
    assert row["source"] == "billing"
    assert row["channel"] == "email"
    assert row["purpose"] == "order_confirmation"
    assert row["reason_category"] == "invalid_address"
    assert row["team"] == "CRM admins"
    assert row["assignee"] == "alice"
    assert row["customers_affected"] == "3"
    assert row["customers_reached_anyway"] == "1"
    assert row["customers_not_reached"] == "2"
    assert row["occurrences"] == "3"
    assert row["first_seen"] == "2025-03-14T10:00:00Z"
    assert row["last_seen"] == "2025-03-14T10:10:00Z"
    assert row["resolved_at"] == row["snoozed_until"] == row["merged_into"] == ""
    assert row["url"] == f"https://notifwatch.example.com/exceptions/{bounced.pk}/"


def test_jsonl_keeps_json_types(bounced):
    set_status(bounced, "resolved")
    (record,) = export(fmt="jsonl")
    assert list(record) == EXCEPTION_HEADER
    assert record["exception_id"] == bounced.pk
    assert record["customers_not_reached"] == 2
    assert record["team"] == "" and record["merged_into"] is None
    assert record["status"] == "resolved"
    assert record["resolved_at"].endswith("Z")


def test_kinds_without_a_catalog_reason_are_explained_too(db):
    quiet = silence(3, title="Billing went quiet", detail={"mode": "purpose_stopped"})
    (row,) = export()
    assert row["exception_id"] == str(quiet.pk)
    assert row["kind"] == "silence"
    assert row["readable_reason"].endswith(
        "stopped sending this notification while it normally would."
    )
    assert row["suggested_action"].startswith("Check the job or trigger")
    assert row["source"] == ""


def test_merged_exceptions_are_included_and_say_where_they_went(json_source):
    send(json_source, bounce("ord-7:email", "2025-03-14T11:00:00Z", "cus_7"))
    send(json_source, bounce("ord-8:sms", "2025-03-14T11:05:00Z", "cus_8", channel="sms"))
    email = record_failures(Notification.objects.filter(channel="email"))
    sms = record_failures(Notification.objects.filter(channel="sms"))
    merge([sms], email)

    records = {r["exception_id"]: r for r in export()}
    assert set(records) == {str(email.pk), str(sms.pk)}
    assert records[str(sms.pk)]["merged_into"] == str(email.pk)
    assert records[str(sms.pk)]["status"] == "resolved"
    assert records[str(email.pk)]["merged_into"] == ""


def test_since_and_until_keep_the_exceptions_that_occurred_in_the_window(db):
    early = silence(1)  # seen 01:00 only
    spanning = silence(2)
    record_problems([simple_problem("quiet-2", 9)], rule="tests")  # seen 02:00 to 09:00
    late = silence(8)

    def ids(**window) -> set[str]:
        return {r["exception_id"] for r in export(**window)}

    at = lambda hour: datetime(2025, 3, 14, hour, tzinfo=UTC)  # noqa: E731
    assert ids() == {str(early.pk), str(spanning.pk), str(late.pk)}
    # since: last seen at or after it; until: first seen before it (exclusive).
    assert ids(since=at(2)) == {str(spanning.pk), str(late.pk)}
    assert ids(until=at(2)) == {str(early.pk)}
    assert ids(since=at(3), until=at(5)) == {str(spanning.pk)}
    assert ids(since=at(10)) == set()
    # Oldest first, by last seen.
    assert [r["exception_id"] for r in export()] == [str(early.pk), str(late.pk), str(spanning.pk)]


def test_source_keeps_one_sources_exceptions(bounced, db):
    other = save_source(slug="crm", kind="json").source
    quiet = silence(4, source_id=other.pk)
    silence(5)  # no source at all
    assert [r["exception_id"] for r in export(source_slug="billing")] == [str(bounced.pk)]
    assert [r["exception_id"] for r in export(source_slug="crm")] == [str(quiet.pk)]


def test_titles_are_masked_unless_personal_data_may_be_seen(db):
    silence(6, title="Bounces to ana.ruiz@example.com and +14155550118")
    (masked,) = export()
    assert "ana.ruiz@example.com" not in masked["title"]
    assert "a•••@example.com" in masked["title"] and "+1•••••0118" in masked["title"]
    (shown,) = export(show_personal_data=True)
    assert shown["title"] == "Bounces to ana.ruiz@example.com and +14155550118"


def test_formulas_in_titles_arrive_as_text(db):
    silence(7, title=FORMULA)
    assert export()[0]["title"] == "'" + FORMULA
    assert export(fmt="jsonl")[0]["title"] == FORMULA


def test_queries_do_not_grow_with_exceptions(db, django_assert_max_num_queries):
    team = Team.objects.create(name="Platform")
    for n in range(30):
        assign(silence(n % 24, fingerprint=f"quiet-{n}"), team=team)
    # The select (and on PostgreSQL a savepoint and its release), however many chunks.
    with django_assert_max_num_queries(3):
        assert len(export(chunk_size=10)) == 30


# --- the command -------------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("export", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_exports_exceptions_and_audits_the_run(bounced, json_source):
    quiet = silence(9)
    everything = parse_jsonl(run("exceptions", "--format", "jsonl"))
    assert [r["exception_id"] for r in everything] == [quiet.pk, bounced.pk]  # by last seen
    (billing,) = parse_csv(run("exceptions", "--source", "billing", "--since", "2025-03-14"))
    assert billing["exception_id"] == str(bounced.pk)
    assert parse_csv(run("exceptions", "--until", "2025-03-14")) == []

    runs = list(AuditEntry.objects.filter(action="export.downloaded").order_by("id"))
    assert [(e.new["kind"], e.new["rows"]) for e in runs] == [
        ("exceptions", 2),
        ("exceptions", 1),
        ("exceptions", 0),
    ]
    assert (runs[0].target_type, runs[0].target_id) == ("export", "exceptions")
    assert (runs[1].target_type, runs[1].target_id) == ("ingest.source", str(json_source.pk))


def test_the_command_refuses_an_unknown_source(bounced):
    with pytest.raises(CommandError, match="no source 'nope'"):
        run("exceptions", "--source", "nope")


# --- exception ids in the notifications export -------------------------------------------------


def test_notifications_carry_the_ids_of_their_exceptions(bounced, json_source):
    # ord-1 also counts in a second exception (as a late notification, say).
    ord_1 = Notification.objects.get(notification_key="ord-1:email")
    (late,) = failure_problems([ord_1])
    late.kind, late.fingerprint = Kind.LATE, f"late:{ord_1.pk}"
    (late_pk,) = record_problems([late], rule="tests")

    records = {r["notification_key"]: r for r in export("notifications", fmt="jsonl")}
    assert records["ord-1:email"]["exception_ids"] == sorted([bounced.pk, late_pk])
    assert records["ord-2:email"]["exception_ids"] == [bounced.pk]
    assert records["ord-3:email"]["exception_ids"] == [bounced.pk]
    assert records["ord-2:sms"]["exception_ids"] == []  # delivered: in no exception

    as_csv = {r["notification_key"]: r for r in export("notifications")}
    assert (
        as_csv["ord-1:email"]["exception_ids"]
        == f"{min(bounced.pk, late_pk)} {max(bounced.pk, late_pk)}"
    )
    assert as_csv["ord-2:sms"]["exception_ids"] == ""


def test_exception_ids_cost_no_query_per_row(bounced, django_assert_max_num_queries):
    # One select (and on PostgreSQL a savepoint and its release), however many chunks.
    with django_assert_max_num_queries(3):
        records = export("notifications", chunk_size=2)
    assert len(records) == 4
