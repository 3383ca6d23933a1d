import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def header_search(page, q: str) -> None:
    box = page.locator("header.topbar input[name=q]")
    box.fill(q)
    box.press("Enter")


def test_it_finds_an_order_and_tells_whether_it_was_delivered(
    page, live_server, transactional_db, log_in, reviewer, imported
):
    imported(
        "01_retry_503_timeout_then_delivered.jsonl", "07_send_records_for_provider_samples.jsonl"
    )
    log_in(reviewer)
    expect(page.get_by_role("heading", name="The last 7 days")).to_be_visible()

    header_search(page, "ORD-2025-119001")

    results = page.locator("#results")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text("chloe.martin@example.com")
    expect(results).to_contain_text("Delivered")
    results.get_by_role("link", name="Order confirmation").click()

    expect(page.locator("#verdict")).to_contain_text("Delivered on the 3rd attempt, Mar 14 10:01")
    timeline = page.locator(".timeline li")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(0)).to_contain_text("Deferred")
    expect(timeline.nth(2)).to_contain_text("Delivered")


def test_it_masks_recipients_for_a_viewer(
    page, live_server, transactional_db, log_in, viewer, imported
):
    imported(
        "01_retry_503_timeout_then_delivered.jsonl", "07_send_records_for_provider_samples.jsonl"
    )
    log_in(viewer)

    header_search(page, "cus_11690")

    results = page.locator("#results")
    expect(results).to_contain_text("c•••@example.com")
    expect(results).not_to_contain_text("chloe.martin@example.com")

    # The search form on the page swaps only the results (htmx) and keeps the URL shareable.
    page.evaluate("window.stillTheSamePage = true")
    page.locator("main input[name=q]").fill("Chloe.Martin@example.com")
    page.locator("main").get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"q=Chloe\.Martin%40example\.com"))
    expect(results).to_contain_text("Results for “Chloe.Martin@example.com”")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(results).to_contain_text("c•••@example.com")
    expect(page.locator("body")).not_to_contain_text("chloe.martin@example.com")
