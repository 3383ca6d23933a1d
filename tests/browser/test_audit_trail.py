"""The audit trail from the main menu: a filter narrows the list, and the export holds exactly
what is on screen, without reloading the page."""

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from notifwatch.accounts.actions import set_time_zone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_export_after_filtering_holds_exactly_the_filtered_entries(
    page, live_server, transactional_db, log_in, auditor, admin_user
):
    # Someone else's action, which the filter must leave out of the export.
    set_time_zone(auditor, "Europe/Berlin", actor=admin_user)
    log_in(auditor)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.locator("#entries tbody tr")).to_have_count(2)  # the time zone, the sign-in

    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("Actor").fill("alice")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    assert page.evaluate("window.stillTheSamePage") is True  # swapped by htmx, not reloaded

    link = page.get_by_role("link", name="Export CSV")
    expect(link).to_have_attribute("href", re.compile(r"^/audit/export\.csv\?actor=alice&"))
    response = page.request.get(live_server.url + link.get_attribute("href"))
    rows = list(csv.DictReader(io.StringIO(response.text())))
    assert [row["actor"] for row in rows] == ["alice"]
