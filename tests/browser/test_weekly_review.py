"""A reviewer holds the weekly review in a real browser; a viewer cannot change anything."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notifwatch.accounts.models import Team
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import FailureGroup, Status
from notifwatch.ingest.actions import save_source
from tests.reviews.data import ago, bounces

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def week_of_problems(db):
    Team.objects.create(name="CRM admins")
    Team.objects.create(name="Engineering")
    source = save_source(slug="shop", kind="json", name="Shop sender").source
    for n, purpose in enumerate(
        ("order_confirmation", "password_reset", "weekly_deals", "invoice_available")
    ):
        bounces(source, purpose, 3 + n, ago(days=1, hours=n))
    return source


def decide(page, key: str, **fields) -> None:
    panel = page.locator(f"#decide-{key}")
    panel.locator("summary").click()
    for name, value in fields.items():
        field = panel.locator(f"[name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    heading = page.locator("#item-title").inner_text()
    panel.locator("button[type=submit]").click()
    # The next item replaces this one.
    expect(page.locator("#item-title")).not_to_have_text(heading)


def test_a_reviewer_holds_the_weekly_review(page, live_server, log_in, reviewer, week_of_problems):
    log_in(reviewer)
    expect(page.get_by_role("heading", level=1)).to_be_visible()  # the overview

    page.get_by_role("link", name="Review").first.click()
    page.get_by_role("button", name="Start this week's review").click()
    expect(page.locator(".clock-time")).to_be_visible()

    decide(page, "assign", team="CRM admins")
    decide(page, "assign", team="Engineering")
    decide(page, "accept", note="Marketing mail; expected while the list is cleaned.")
    snooze_date = (timezone.localdate() + timedelta(days=7)).isoformat()
    page.locator("#decide-snooze summary").click()
    page.locator("#decide-snooze [name=snooze_until]").fill(snooze_date)
    page.locator("#decide-snooze button[type=submit]").click()
    page.get_by_text("Finish the review…").click()
    page.get_by_label("Notes for the minutes (optional)").fill("Four items, all decided.")
    page.get_by_role("button", name="Finish and see the minutes").click()

    expect(page).to_have_url(re.compile(r"/reviews/\d+/minutes/$"))
    minutes = page.locator("main").inner_text()
    assert "CRM admins" in minutes and "Engineering" in minutes
    statuses = sorted(FailureGroup.objects.values_list("status", flat=True))
    assert statuses == sorted([Status.ASSIGNED, Status.ASSIGNED, Status.ACCEPTED, Status.SNOOZED])
    assert AuditEntry.objects.filter(action="review.finished", actor=reviewer).exists()


def test_a_viewer_sees_masked_recipients_and_cannot_assign(
    page, live_server, log_in, viewer, week_of_problems
):
    group = FailureGroup.objects.first()
    log_in(viewer)
    page.goto(f"{live_server.url}/exceptions/{group.pk}/")
    expect(page.get_by_role("button", name="Assign")).to_have_count(0)
    page.goto(f"{live_server.url}/notifications/?q=cus_order_confirmation_0")
    results = page.locator("table").inner_text()
    assert "cus_order_confirmation_0" in results
    assert "•••@" in results and "cus_order_confirmation_0@" not in results

    # A forged POST from the viewer's own session is refused by the server.
    status = page.evaluate(
        """async ([url, team]) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const body = new URLSearchParams({action: 'assign', team: team});
            const r = await fetch(url, {method: 'POST', body, headers: {'X-CSRFToken': token}});
            return r.status;
        }""",
        [f"{live_server.url}/exceptions/{group.pk}/action/", str(Team.objects.first().pk)],
    )
    assert status == 403
    group.refresh_from_db()
    assert group.team is None


def test_a_reviewer_keeps_the_owner_rules_teams_in_one_step(
    page, live_server, log_in, reviewer, week_of_problems
):
    from notifwatch.failures.actions import assign

    crm = Team.objects.get(name="CRM admins")
    routed = list(FailureGroup.objects.order_by("pk")[:2])
    for group in routed:
        assign(group, team=crm, rule="owner rule 1 (delivery failures)")
    log_in(reviewer)

    page.goto(live_server.url + "/reviews/")
    page.get_by_role("button", name="Start this week's review").click()

    # The first step, above the walk: what it does, how much it settles, the primary button.
    first_step = page.locator(".routed-confirm")
    expect(first_step).to_contain_text("First step")
    expect(first_step).to_contain_text("2 of 4 items settled in one step")
    expect(first_step).to_contain_text("2 new exceptions already have a team (CRM admins 2)")
    keep = page.get_by_role("button", name="Keep the teams of 2")
    expect(keep).to_have_class(re.compile(r"\bprimary\b"))
    step_box, card_box = first_step.bounding_box(), page.locator(".review-card").bounding_box()
    assert step_box["y"] + step_box["height"] <= card_box["y"]
    # The walk starts with an unowned one; its badge says so, and "New" is said only once.
    badges = page.locator(".review-card .counts .badge")
    expect(badges.first).to_have_text("New · no owner")
    assert [b for b in badges.all_inner_texts() if "New" in b] == ["New · no owner"]
    # The routed ones are folded away until kept or opened.
    routed_list = page.locator("#agenda-routed")
    expect(routed_list.locator("summary")).to_have_text(
        "Already routed: 2 new exceptions with a team"
    )
    expect(routed_list.get_by_text("New · routed to CRM admins").first).to_be_hidden()

    keep.click()

    expect(page.get_by_text("Kept the team of 2 new exceptions.")).to_be_visible()
    expect(page.locator(".review-progress")).to_contain_text("2 decided, 2 to go")
    expect(page.locator(".routed-confirm")).to_have_count(0)
    expect(page.locator("#agenda-routed")).to_have_count(0)
    assert AuditEntry.objects.filter(action="review.decided").count() == 2
    assert AuditEntry.objects.filter(action="review.routing_confirmed").count() == 1
