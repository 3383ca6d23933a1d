"""A reviewer goes from the week's minutes to its evidence pack and prints it."""

import pytest
from playwright.sync_api import expect

from notifwatch.ingest.actions import save_source
from tests.audit.evidence_data import held_week

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_opens_the_evidence_pack_from_the_minutes_and_prints_it(
    page, live_server, log_in, reviewer
):
    source = save_source(slug="shop", kind="json", name="Shop sender").source
    week = held_week(reviewer, source)
    log_in(reviewer)

    page.goto(f"{live_server.url}/reviews/{week.review.pk}/minutes/")
    page.get_by_role("link", name="Evidence pack for this week").click()

    monday = week.monday
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Evidence pack — week of {monday:%a} {monday.day} {monday:%b %Y}"
    )
    minutes = page.locator("#minutes")
    expect(minutes).to_contain_text("Assigned")
    expect(minutes).to_contain_text("Accepted as expected")
    expect(minutes).to_contain_text("Billing (team) · rita (person)")
    expect(page.locator("#exceptions tbody tr")).to_have_count(3)
    print_button = page.get_by_role("button", name="Print / Save as PDF")
    expect(print_button).to_be_visible()  # shown by its script; the page works without it
    expect(page.locator("header.topbar")).to_be_visible()

    page.emulate_media(media="print")

    expect(page.locator("header.topbar")).to_be_hidden()
    expect(print_button).to_be_hidden()
    expect(minutes).to_contain_text("Accepted as expected")
    # Each part starts on a new sheet, and long tables repeat their header on each one.
    assert page.locator("#exceptions").evaluate("e => getComputedStyle(e).breakBefore") == "page"
    assert (
        page.locator("#audit thead").evaluate("e => getComputedStyle(e).display")
        == "table-header-group"
    )
    # Nothing is cut off at the right edge of the page.
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
