"""The audit page and an exception's history read as sentences, from real actions."""

from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.actions import change_role, create_user, set_teams, set_time_zone
from notifwatch.accounts.models import Team
from notifwatch.alerts.actions import create_subscription, remove_subscription, update_subscription
from notifwatch.api.tokens import create_token
from notifwatch.audit.exports import record_export
from notifwatch.audit.models import AuditEntry
from notifwatch.failures import bulk
from notifwatch.failures.actions import add_note, assign, merge, set_status, snooze
from notifwatch.failures.models import GroupHistory
from notifwatch.failures.reviews import decide, finish_review, start_review
from notifwatch.ingest.actions import rotate_token, set_mapping
from notifwatch.ingest.presets import load_preset
from tests.exceptions.data import bounced_order_confirmations
from tests.reviews.data import bounces

pytestmark = pytest.mark.django_db


def page(client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200
    return unescape(response.content.decode())


@pytest.fixture
def teams(db) -> dict[str, Team]:
    return {name: Team.objects.create(name=name) for name in ("CRM admins", "Engineering")}


def test_a_team_change_reads_the_same_on_the_audit_page_and_in_the_history(
    client, reviewer, viewer, json_source, teams
):
    group = bounced_order_confirmations(json_source)
    assign(group, team=teams["CRM admins"], rule="owner rule 1 (delivery failures)")
    assign(group, team=teams["Engineering"], actor=reviewer)
    client.force_login(viewer)

    trail = page(client, "/audit/")
    row = trail[trail.index("<tbody>") :].split("</tr>")[0]  # the newest entry
    assert "<td>Assigned<div>" in row
    assert ">exception.assigned</code>" in row  # the code stays, for scripts and engineers
    assert "<div>Team: CRM admins → Engineering</div>" in row
    assert "Status" not in row  # it stayed assigned: context, not a change

    history = page(client, reverse("exception_detail", args=[group.pk]))
    history = history[history.index('id="history"') : history.index("Latest occurrences")]
    assert history.index("rita</strong> — Assigned") < history.index(
        "Team: CRM admins → Engineering"
    )
    assert "Team: none → CRM admins" in history  # the owner rule's, before


def test_assigning_the_same_owner_again_on_the_page_writes_and_shows_nothing(
    client, reviewer, json_source, teams
):
    group = bounced_order_confirmations(json_source)
    assign(group, team=teams["CRM admins"], actor=reviewer)
    entries, rows = AuditEntry.objects.count(), GroupHistory.objects.count()
    client.force_login(reviewer)

    response = client.post(
        reverse("exception_action", args=[group.pk]),
        {"action": "assign", "team": teams["CRM admins"].pk},
        follow=True,
    )

    assert (AuditEntry.objects.count(), GroupHistory.objects.count()) == (entries, rows)
    content = unescape(response.content.decode())
    assert "Owner: CRM admins (team)." in content
    history = content[content.index('id="history"') : content.index("Latest occurrences")]
    assert history.count("— Assigned") == 1
    assert "again" not in history and "Nothing changed" not in history


def everyday_actions(reviewer, admin_user, source, teams) -> None:
    """What a demo week and its review leave in the trail, through the real action functions."""
    rotate_token(source, actor=admin_user)
    group = bounced_order_confirmations(source)
    other = bounces(source, "invoice", 2, timezone.now() - timedelta(hours=3))
    assign(group, team=teams["CRM admins"], rule="owner rule 1 (delivery failures)")
    review, _ = start_review(reviewer)
    decide(
        review.items.get(group=group),
        "escalate",
        actor=reviewer,
        team=teams["Engineering"],
        assignee=reviewer,
        note="CRM cannot fix the sender domain",
    )
    finish_review(review, actor=reviewer, note="Short week")
    snooze(group, timezone.now() + timedelta(days=7), wake_at_occurrences=50, actor=reviewer)
    set_status(group, "resolved", actor=reviewer, comment="Domain fixed")
    add_note(group, "Checked the next morning", actor=reviewer)
    bulk.apply_bulk(
        "status=new",
        bulk.Change(verb="assign", team=teams["Engineering"]),
        actor=reviewer,
        expected=1,
    )
    merge([other], group, actor=reviewer)
    set_mapping(source, load_preset("inhouse_log"), actor=admin_user)  # after its events
    dana = create_user(
        username="dana",
        role="viewer",
        actor=admin_user,
        email="dana@example.com",
        teams=[teams["CRM admins"]],
    ).user
    change_role(dana, "reviewer", actor=admin_user)
    set_teams(dana, [teams["Engineering"]], actor=admin_user)
    set_time_zone(dana, "UTC", actor=admin_user)
    set_time_zone(dana, "Europe/Berlin", actor=admin_user)
    subscription = create_subscription(
        actor=admin_user, user=dana, kind="assigned", channel="email"
    ).subscription
    update_subscription(subscription, actor=admin_user, timing="daily", digest_hour=9)
    remove_subscription(subscription, actor=admin_user)
    create_token(dana, "nightly report", actor=admin_user)
    record_export(
        actor=reviewer, kind="notifications", format="csv", filters={"source": "billing"}, rows=12
    )


def test_everyday_actions_read_as_sentences_never_as_dicts(
    client, reviewer, admin_user, json_source, teams
):
    everyday_actions(reviewer, admin_user, json_source, teams)
    assert AuditEntry.objects.count() < 50  # one page
    client.force_login(reviewer)

    content = page(client, "/audit/")

    entries = content[content.index("<tbody>") : content.index("</tbody>")]
    assert "{'" not in entries and "': " not in entries
    for sentence in (
        "Time zone: UTC → Europe/Berlin",
        "Role: Viewer → Reviewer",
        "Teams: CRM admins → Engineering",
        "Team: CRM admins → Engineering",
        "Assignee: nobody → rita",
        "Status: Snoozed → Resolved",
        "Merged into another exception",
        "Decided on an agenda item",
        "Decision: Escalated",
        "Timing: immediate → daily",
        "Secret hint:",
    ):
        assert sentence in entries, sentence
    assert "Assigned many exceptions at once" in entries and "Team: Engineering" in entries


def test_personal_data_in_entries_is_masked_for_viewers(client, viewer, reviewer, json_source):
    group = bounced_order_confirmations(json_source)
    add_note(group, "Asked CRM to fix chloe.martin@example.com", actor=reviewer)
    client.force_login(viewer)

    content = page(client, "/audit/")

    assert "chloe.martin@example.com" not in content
    assert "Asked CRM to fix c•••@example.com" in content
    client.force_login(reviewer)
    assert "Asked CRM to fix chloe.martin@example.com" in page(client, "/audit/")
