"""Export buttons on the queue, an exception's page and the search: exactly what is shown, streamed,
masked for who may not see personal data, and audited; and the links to each object's trail."""

import re
from html import unescape

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection

from notifwatch.accounts.models import Team
from notifwatch.audit.actions import record_audit
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.failures.actions import assign, set_status
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.failures.views import exception_notifications_export
from notifwatch.ingest.actions import save_source
from tests.conftest import make_user
from tests.exceptions.data import (
    bounced_order_confirmations,
    event,
    record_failures,
    send,
    simple_problem,
)

from . import FORMULA, parse_csv, parse_jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture
def bounced(json_source) -> FailureGroup:
    """Billing: order confirmations bounced for cus_1, cus_2, cus_3; cus_2 got an SMS."""
    return bounced_order_confirmations(json_source)


@pytest.fixture
def evil(db) -> FailureGroup:
    """CRM: one failed notification whose provider message is a spreadsheet formula."""
    crm = save_source(slug="crm", kind="json").source
    failed = event(
        "crm-9:email", "failed", "2025-03-14T12:00:00Z", "cus_9", code="x-1", message=FORMULA
    )
    send(crm, failed)
    return record_failures(Notification.objects.filter(source=crm))


@pytest.fixture
def resolved(db) -> FailureGroup:
    (pk,) = record_problems([simple_problem("quiet", 3)], rule="tests")
    return set_status(FailureGroup.objects.get(pk=pk), "resolved")


def link(content: bytes, path: str) -> str:
    """The address of the link to `path` on a page, as a browser without JavaScript follows it."""
    found = re.search(rf'href="([^"]*{re.escape(path)}[^"]*)"', content.decode())
    assert found, f"no link to {path}"
    return unescape(found.group(1))


def body(response) -> str:
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def leave(response) -> None:
    """Close a response half-way, as the server does when the client goes away (keeping the
    test's database connection, as the test client would)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def last_export() -> AuditEntry:
    return AuditEntry.objects.filter(action="export.downloaded").latest("id")


# --- the review queue -------------------------------------------------------------------------


def test_it_exports_the_queue_exactly_as_filtered(client, reviewer, bounced, evil, resolved):
    client.force_login(reviewer)
    page = client.get("/exceptions/", {"source": bounced.source_id})
    url = link(page.content, "/exceptions/export.csv")

    response = client.get(url)
    rows = parse_csv(body(response))
    assert [r["exception_id"] for r in rows] == [str(bounced.pk)]  # not CRM's, not resolved
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="notifwatch-exceptions.csv"'

    entry = last_export()
    assert entry.actor == reviewer
    assert (entry.target_type, entry.target_id) == ("export", "exceptions")
    assert entry.new == {
        "kind": "exceptions",
        "format": "csv",
        "filters": {"source": str(bounced.source_id), "status": "open"},
        "rows": 1,
        "show_personal_data": True,
        "completed": True,
    }


def test_the_queue_export_shows_open_exceptions_unless_the_status_says_otherwise(
    client, auditor, bounced, evil, resolved
):
    client.force_login(auditor)
    open_ones = parse_jsonl(body(client.get("/exceptions/export.jsonl")))
    assert {r["exception_id"] for r in open_ones} == {bounced.pk, evil.pk}
    everything = parse_jsonl(body(client.get("/exceptions/export.jsonl", {"status": "all"})))
    assert {r["exception_id"] for r in everything} == {bounced.pk, evil.pk, resolved.pk}
    only_resolved = client.get(
        link(client.get("/exceptions/?status=resolved").content, "/exceptions/export.jsonl")
    )
    assert [r["exception_id"] for r in parse_jsonl(body(only_resolved))] == [resolved.pk]


def test_a_filter_that_does_not_work_exports_nothing(client, reviewer, bounced):
    client.force_login(reviewer)
    response = client.get("/exceptions/export.csv", {"kind": "no-such-kind"})
    assert response.status_code == 400
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()


def test_queue_titles_are_masked_for_an_auditor(client, auditor, reviewer, db):
    (pk,) = record_problems(
        [simple_problem("shared", 4, title="Bounces to ana.ruiz@example.com")], rule="tests"
    )
    client.force_login(auditor)
    (masked,) = parse_csv(body(client.get("/exceptions/export.csv")))
    assert masked["title"] == "Bounces to a•••@example.com"
    client.force_login(reviewer)
    (shown,) = parse_csv(body(client.get("/exceptions/export.csv")))
    assert shown["title"] == "Bounces to ana.ruiz@example.com"


# --- one exception's notifications ------------------------------------------------------------


def test_it_exports_the_notifications_of_one_exception(client, auditor, bounced, evil):
    client.force_login(auditor)
    page = client.get(f"/exceptions/{bounced.pk}/")
    url = link(page.content, f"/exceptions/{bounced.pk}/export.csv")

    response = client.get(url)
    rows = parse_csv(body(response))
    # Not the SMS that reached cus_2, not CRM's failure.
    assert [r["notification_key"] for r in rows] == ["ord-1:email", "ord-2:email", "ord-3:email"]
    assert {r["exception_ids"] for r in rows} == {str(bounced.pk)}
    assert {r["recipient"] for r in rows} == {"c•••@example.com"}  # auditors see them masked
    assert response["Content-Disposition"] == (
        f'attachment; filename="notifwatch-exception-{bounced.pk}-notifications.csv"'
    )

    # Recorded in the exception's own trail.
    entry = last_export()
    assert (entry.target_type, entry.target_id) == ("failures.failuregroup", str(bounced.pk))
    assert entry.new["kind"] == "notifications"
    assert entry.new["filters"] == {"exception": bounced.pk}
    assert entry.new["rows"] == 3
    assert entry.new["show_personal_data"] is False


def test_recipients_show_for_who_may_see_personal_data(client, reviewer, bounced):
    client.force_login(reviewer)
    rows = parse_jsonl(body(client.get(f"/exceptions/{bounced.pk}/export.jsonl")))
    assert {r["recipient"] for r in rows} == {
        "cus_1@example.com",
        "cus_2@example.com",
        "cus_3@example.com",
    }
    assert last_export().new["show_personal_data"] is True


def test_an_auditor_granted_personal_data_sees_recipients(client, django_user_model, bounced):
    granted = make_user(django_user_model, "gina", "auditor", personal_data_granted=True)
    client.force_login(granted)
    rows = parse_jsonl(body(client.get(f"/exceptions/{bounced.pk}/export.jsonl")))
    assert "cus_1@example.com" in {r["recipient"] for r in rows}


def test_an_unknown_exception_is_not_found(client, reviewer, db):
    client.force_login(reviewer)
    assert client.get("/exceptions/999/export.csv").status_code == 404


# --- the search ---------------------------------------------------------------------------------


def test_it_exports_every_notification_the_search_matches(client, reviewer, bounced, evil):
    client.force_login(reviewer)
    page = client.get("/notifications/", {"q": "cus_2"})
    url = link(page.content, "/notifications/export.csv")
    assert url.endswith("?q=cus_2")

    rows = parse_csv(body(client.get(url)))
    assert {r["notification_key"] for r in rows} == {"ord-2:email", "ord-2:sms"}  # not cus_1's
    entry = last_export()
    assert (entry.target_type, entry.target_id) == ("export", "notifications")
    assert entry.new["filters"] == {"q": "cus_2"}
    assert entry.new["rows"] == 2


def test_formulas_from_a_payload_arrive_as_text(client, auditor, evil):
    client.force_login(auditor)
    (row,) = parse_csv(body(client.get("/notifications/export.csv", {"q": "cus_9"})))
    assert row["error_message"] == "'" + FORMULA
    (record,) = parse_jsonl(body(client.get("/notifications/export.jsonl", {"q": "cus_9"})))
    assert record["error_message"] == FORMULA
    (row,) = parse_csv(body(client.get(f"/exceptions/{evil.pk}/export.csv")))
    assert row["error_message"] == "'" + FORMULA


# --- who may export -------------------------------------------------------------------------------


def test_viewers_see_no_export_buttons_and_get_403(client, viewer, bounced):
    client.force_login(viewer)
    pages = {
        "/exceptions/": "/exceptions/export.",
        f"/exceptions/{bounced.pk}/": f"/exceptions/{bounced.pk}/export.",
        "/notifications/?q=cus_1": "/notifications/export.",
    }
    for page, export_path in pages.items():
        content = client.get(page).content.decode()
        assert export_path not in content
        for fmt in ("csv", "jsonl"):
            query = "?q=cus_1" if "notifications" in export_path else ""
            assert client.get(f"{export_path}{fmt}{query}").status_code == 403
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()


def test_exports_need_a_login(client, bounced):
    response = client.get(f"/exceptions/{bounced.pk}/export.csv")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_download_left_half_way_is_audited_as_incomplete(rf, reviewer, bounced):
    # Called as the WSGI server calls it: no test client wrapped around the response.
    request = rf.get(f"/exceptions/{bounced.pk}/export.csv")
    request.user = reviewer
    in_atomic = connection.in_atomic_block
    response = exception_notifications_export(request, pk=bounced.pk, fmt="csv")
    assert next(iter(response.streaming_content)).startswith(b"source,notification_key,")
    leave(response)
    entry = last_export()
    assert entry.new["completed"] is False and entry.new["rows"] == 0
    assert connection.in_atomic_block == in_atomic


# --- links to the audit trail -------------------------------------------------------------------


def test_an_exception_page_links_to_its_own_audit_trail(client, reviewer, bounced, evil):
    assign(bounced, team=Team.objects.create(name="CRM admins"), actor=reviewer)
    client.force_login(reviewer)
    body(client.get(f"/exceptions/{bounced.pk}/export.csv"))

    url = link(client.get(f"/exceptions/{bounced.pk}/").content, "/audit/?")
    entries = client.get(url).context["entries"]
    assert [e.action for e in entries] == [
        "export.downloaded",
        "exception.assigned",
        "exception.created",
    ]
    assert {(e.target_type, e.target_id) for e in entries} == {
        ("failures.failuregroup", str(bounced.pk))
    }


def test_a_notification_page_links_to_its_own_audit_trail(client, auditor, admin_user, bounced):
    notification = Notification.objects.get(notification_key="ord-1:email")
    other = Notification.objects.get(notification_key="ord-2:email")
    record_audit(actor=admin_user, action="notification.checked", target=notification)
    record_audit(actor=admin_user, action="notification.checked", target=other)
    client.force_login(auditor)

    url = link(client.get(f"/notifications/{notification.pk}/").content, "/audit/?")
    (entry,) = client.get(url).context["entries"]
    assert (entry.target_type, entry.target_id) == ("deliveries.notification", str(notification.pk))


# --- long text ----------------------------------------------------------------------------------

# Planted in a text field by anyone with a source token: one run of address characters, which
# took the old masking about a minute per 100,000 characters (an export stopped after 233 rows).
PLANTED = "for ana.ruiz@example.com: " + "+1" * 50_000


def test_an_auditor_exports_every_row_of_long_messages(client, auditor, reviewer, json_source):
    send(
        json_source,
        *(event(f"long-{n}", "failed", "2025-03-14T10:00:00Z", f"cus_{n}") for n in range(250)),
    )
    # Stored messages are cut at 1,000 characters; exports must not depend on it.
    Notification.objects.update(error_message=PLANTED)
    client.force_login(auditor)

    rows = parse_csv(body(client.get("/notifications/export.csv", {"source": json_source.slug})))

    assert len(rows) == 250
    assert last_export().new["rows"] == 250
    # Masked in the part kept; the run across the cut is left out whole.
    assert {r["error_message"] for r in rows} == {
        "for a•••@example.com: … [100,001 more characters not shown]"
    }
    client.force_login(reviewer)
    (record, *_) = parse_jsonl(
        body(client.get("/notifications/export.jsonl", {"source": json_source.slug}))
    )
    assert record["error_message"] == PLANTED[:32_000] + " … [68,026 more characters not shown]"


def test_an_exception_of_a_long_reason_exports_masked_and_cut(client, auditor, db):
    detail = {"field": "attempt", "pattern": PLANTED}
    (pk,) = record_problems(
        [simple_problem("long", 3, kind=Kind.MAPPING_BREAK, detail=detail)], rule="tests"
    )
    client.force_login(auditor)
    (row,) = parse_csv(body(client.get("/exceptions/export.csv")))
    assert row["exception_id"] == str(pk)
    assert row["readable_reason"] == (
        "Events from this source could not be read: "
        "attempt for a•••@example.com: … [100,001 more characters not shown]."
    )
