"""The search page's filters: source, channel, final status and days, alone or with a search,
paged by keyset, shown with their errors, and exported exactly (audited with the filters)."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries import views
from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import save_source
from tests.audit import parse_csv, parse_jsonl
from tests.exceptions.data import event, send

pytestmark = pytest.mark.django_db

# key: (source, channel, status, last activity, customer)
SAMPLES = {
    "b1": ("billing", "email", "delivered", "2025-03-10T12:00:00Z", "cus_1"),
    "b2": ("billing", "sms", "bounced", "2025-03-12T09:00:00Z", "cus_1"),
    "b3": ("billing", "sms", "delivered", "2025-03-13T23:30:00Z", "cus_2"),
    "b4": ("billing", "email", "bounced", "2025-03-14T03:00:00Z", "cus_2"),  # 13th in New York
    "b5": ("billing", "sms", "bounced", "2025-03-14T12:00:00Z", "cus_3"),
    "c1": ("crm", "sms", "bounced", "2025-03-14T15:00:00Z", "cus_1"),
    "c2": ("crm", "email", "failed", "2025-03-15T00:00:00Z", "cus_2"),  # the 15th's midnight
}


@pytest.fixture
def sample(json_source) -> dict[str, Notification]:
    sources = {"billing": json_source, "crm": save_source(slug="crm", kind="json").source}
    for key, (source, channel, status, at, customer) in SAMPLES.items():
        send(sources[source], event(key, status, at, customer, channel=channel))
    found = {n.notification_key: n for n in Notification.objects.all()}
    assert {key: found[key].final_status for key in SAMPLES} == {
        key: status for key, (_, _, status, _, _) in SAMPLES.items()
    }
    return found


def page(client, **params):
    return client.get(reverse("notification_search"), params)


def keys(response) -> list[str]:
    assert response.status_code == 200
    return [n.notification_key for n in response.context["notifications"]]


def newest_first(sample: dict[str, Notification], chosen: set[str]) -> list[str]:
    rows = sorted((sample[k].last_event_at, sample[k].pk, k) for k in chosen)
    return [k for _, _, k in reversed(rows)]


def link(content: bytes, path: str) -> str:
    found = re.search(rf'href="([^"]*{re.escape(path)}[^"]*)"', content.decode())
    assert found, f"no link to {path}"
    return unescape(found.group(1))


def export_body(response) -> str:
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def last_export() -> AuditEntry:
    return AuditEntry.objects.filter(action="export.downloaded").latest("id")


# --- each filter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"source": "crm"}, {"c1", "c2"}),
        ({"source": "billing"}, {"b1", "b2", "b3", "b4", "b5"}),
        ({"channel": "sms"}, {"b2", "b3", "b5", "c1"}),
        ({"status": "bounced"}, {"b2", "b4", "b5", "c1"}),
        ({"status": "failed"}, {"c2"}),
        ({"from": "2025-03-14"}, {"b4", "b5", "c1", "c2"}),
        ({"from": "2025-03-15"}, {"c2"}),  # from its first instant
        ({"to": "2025-03-13"}, {"b1", "b2", "b3"}),  # the whole 13th, up to 23:59:59.999
        ({"to": "2025-03-14"}, {"b1", "b2", "b3", "b4", "b5", "c1"}),  # not the 15th's 00:00
        ({"from": "2025-03-14", "to": "2025-03-14"}, {"b4", "b5", "c1"}),
        ({"from": "2025-03-16"}, set()),
        ({"channel": "sms", "status": "bounced"}, {"b2", "b5", "c1"}),
        ({"source": "billing", "channel": "email", "from": "2025-03-11"}, {"b4"}),
    ],
)
def test_each_filter_narrows_the_list(client, viewer, sample, params, expected):
    client.force_login(viewer)
    response = page(client, **params)
    assert keys(response) == newest_first(sample, expected)
    if not expected:
        assert "No notification matches these filters." in response.content.decode()


def test_days_are_the_users_days(client, viewer, sample):
    """New York is UTC-4 on 14 March 2025: its 14th runs from 04:00 UTC to 04:00 UTC."""
    Membership.objects.filter(user=viewer).update(time_zone="America/New_York")
    client.force_login(viewer)
    one_day = keys(page(client, **{"from": "2025-03-14", "to": "2025-03-14"}))
    # Not b4 (23:00 on the 13th there); c2 is 20:00 on the 14th there.
    assert one_day == newest_first(sample, {"b5", "c1", "c2"})
    assert keys(page(client, to="2025-03-13")) == newest_first(sample, {"b1", "b2", "b3", "b4"})


def test_without_a_query_or_filter_the_page_asks_for_one(client, viewer, sample):
    client.force_login(viewer)
    for params in ({}, {"q": "", "source": "", "channel": "", "status": "", "from": "", "to": ""}):
        response = page(client, **params)
        assert keys(response) == []
        assert "and press Search" in response.content.decode()


# --- filters and a search -------------------------------------------------------------------


def test_filters_narrow_a_search(client, reviewer, sample):
    client.force_login(reviewer)
    assert keys(page(client, q="cus_1")) == newest_first(sample, {"b1", "b2", "c1"})
    assert keys(page(client, q="cus_1", channel="sms")) == newest_first(sample, {"b2", "c1"})
    assert keys(page(client, q="cus_2", source="crm")) == ["c2"]
    assert keys(page(client, q="cus_2", status="bounced", to="2025-03-14")) == ["b4"]
    assert keys(page(client, q="ORD-b5", channel="sms")) == ["b5"]  # an order reference
    response = page(client, q="cus_3", source="crm")
    assert keys(response) == []
    assert "No notification matches “cus_3” with these filters." in response.content.decode()


def test_filters_never_widen_a_search(client, reviewer, sample):
    client.force_login(reviewer)
    assert keys(page(client, q="cus_404", channel="sms")) == []


# --- paging ---------------------------------------------------------------------------------


@pytest.fixture
def many(json_source):
    """23 SMS bounces, several at the very same moment (the id breaks the tie), among e-mails."""
    events = []
    for n in range(23):
        at = f"2025-03-20T10:{n // 3:02d}:00Z"  # three per minute: ties across pages
        events.append(event(f"sms-{n}", "bounced", at, f"cus_{n % 3}", channel="sms"))
        events.append(event(f"mail-{n}", "bounced", at, f"cus_{n % 3}"))
    send(json_source, *events)


def walk(client, first_params: dict) -> tuple[list[str], list[str]]:
    """Every page from the first, following "Older →": the keys and the older links."""
    seen, links = [], []
    response = page(client, **first_params)
    while True:
        seen += keys(response)
        older = response.context["older_url"]
        if not older:
            return seen, links
        links.append(older)
        assert "Older →" in response.content.decode()
        response = client.get(reverse("notification_search") + older)


@pytest.mark.parametrize(
    "params, wanted",
    [
        ({"channel": "sms"}, {"channel": "sms"}),
        ({"channel": "sms", "q": "cus_1"}, {"channel": "sms", "customer_id": "cus_1"}),
        ({"status": "bounced", "from": "2025-03-20"}, {"final_status": "bounced"}),
    ],
)
def test_paging_with_filters_repeats_and_skips_nothing(
    client, reviewer, many, monkeypatch, params, wanted
):
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    expected = list(
        Notification.objects.filter(**wanted)
        .order_by("-last_event_at", "-id")
        .values_list("notification_key", flat=True)
    )
    client.force_login(reviewer)
    with CaptureQueriesContext(connection) as queries:
        seen, links = walk(client, params)
    assert seen == expected
    assert len(expected) >= 2 * 4  # two pages at least
    for older in links:  # every page keeps the filters
        for name, value in params.items():
            assert f"{name}={value}" in older
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "OFFSET" not in sql


def test_the_first_page_link_keeps_the_filters(client, reviewer, many, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    client.force_login(reviewer)
    first = page(client, channel="sms")
    second = client.get(reverse("notification_search") + first.context["older_url"])
    assert second.context["first_page_url"] == "?channel=sms"
    assert keys(client.get(reverse("notification_search") + "?channel=sms")) == keys(first)


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, field, error",
    [
        ({"status": "lost"}, "status", "Select a valid choice. lost is not one of the available"),
        ({"channel": "fax"}, "channel", "Select a valid choice."),
        ({"source": "nope"}, "source", "Unknown source: pick one from the list."),
        ({"from": "2025-13-45"}, "from", "Enter a valid date."),
        ({"to": "yesterday", "channel": "sms"}, "to", "Enter a valid date."),
        ({"from": "2025-03-14", "to": "2025-03-13"}, "to", "Must be on or after the “from” day."),
        ({"q": "cus_1", "status": "lost"}, "status", "Select a valid choice."),
    ],
)
def test_a_bad_filter_shows_its_error_and_lists_nothing(
    client, reviewer, sample, params, field, error
):
    client.force_login(reviewer)
    response = page(client, **params)
    assert keys(response) == []
    content = response.content.decode()
    # The message sits in the field's own box, under its input.
    box = re.search(
        rf'<div class="filter filter-{field} has-error">(.*?)</div>', content, re.DOTALL
    )
    assert box, f"no error box for {field}"
    assert f'name="{field}"' in box.group(1)
    assert error in unescape(box.group(1))
    assert content.count("has-error") == 1
    assert "These filters do not work" in content
    assert "/notifications/export." not in content


def test_htmx_gets_the_filter_row_with_its_errors_too(client, viewer, sample):
    client.force_login(viewer)
    response = client.get(
        reverse("notification_search"), {"status": "lost"}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode().strip()
    assert content.startswith('<section id="results"')
    assert '<div id="search-filters" class="filters search-filters" hx-swap-oob="true">' in content
    assert "filter-status has-error" in content
    assert "<html" not in content


def test_the_page_shows_the_filters_chosen(client, viewer, sample):
    client.force_login(viewer)
    content = page(client, source="crm", channel="sms", **{"from": "2025-03-14"}).content.decode()
    assert '<option value="crm" selected>' in content
    assert '<option value="sms" selected>' in content
    assert 'name="from" value="2025-03-14"' in content
    assert 'href="/notifications/">Clear filters</a>' in content


# --- exports --------------------------------------------------------------------------------


def test_the_export_holds_exactly_the_filtered_list(client, reviewer, sample):
    client.force_login(reviewer)
    response = page(client, channel="sms", status="bounced")
    url = link(response.content, "/notifications/export.csv")
    assert url == "/notifications/export.csv?channel=sms&status=bounced"

    rows = parse_csv(export_body(client.get(url)))
    assert [r["notification_key"] for r in rows] == ["b2", "b5", "c1"]  # oldest first
    entry = last_export()
    assert entry.actor == reviewer
    assert (entry.target_type, entry.target_id) == ("export", "notifications")
    assert entry.new == {
        "kind": "notifications",
        "format": "csv",
        "filters": {"channel": "sms", "status": "bounced"},
        "rows": 3,
        "show_personal_data": True,
        "completed": True,
    }


def test_the_export_of_a_search_with_filters_and_days(client, auditor, sample):
    Membership.objects.filter(user=auditor).update(time_zone="America/New_York")
    client.force_login(auditor)
    response = page(client, q="cus_2", **{"from": "2025-03-14", "to": "2025-03-14"})
    assert keys(response) == ["c2"]
    url = link(response.content, "/notifications/export.jsonl")
    assert url == "/notifications/export.jsonl?q=cus_2&from=2025-03-14&to=2025-03-14"

    records = parse_jsonl(export_body(client.get(url)))
    assert [r["notification_key"] for r in records] == ["c2"]
    assert records[0]["recipient"] == "c•••@example.com"  # masked for an auditor
    entry = last_export()
    assert entry.new["filters"] == {
        "q": "cus_2",
        "from": "2025-03-14",
        "to": "2025-03-14",
        "time_zone": "America/New_York",
    }
    assert entry.new["rows"] == 1
    assert entry.new["show_personal_data"] is False


def test_the_export_follows_every_page(client, auditor, many, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    client.force_login(auditor)
    url = link(page(client, channel="sms").content, "/notifications/export.csv")
    rows = parse_csv(export_body(client.get(url)))
    assert len(rows) == 23
    assert {r["notification_key"] for r in rows} == {f"sms-{n}" for n in range(23)}
    assert last_export().new["filters"] == {"channel": "sms"}


def test_a_bad_filter_exports_nothing(client, reviewer, sample):
    client.force_login(reviewer)
    for params in ({"status": "lost"}, {"q": "cus_1", "from": "soon"}):
        assert client.get("/notifications/export.csv", params).status_code == 400
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()


def test_a_viewer_can_filter_but_not_export(client, viewer, sample):
    client.force_login(viewer)
    response = page(client, channel="sms", status="bounced")
    assert keys(response) == newest_first(sample, {"b2", "b5", "c1"})
    assert "/notifications/export." not in response.content.decode()
    assert {n.shown_recipient for n in response.context["notifications"]} == {
        "c•••@example.com"
    }  # masked, as on every page for a viewer
    for fmt in ("csv", "jsonl"):
        url = f"/notifications/export.{fmt}?channel=sms&status=bounced"
        assert client.get(url).status_code == 403
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()
