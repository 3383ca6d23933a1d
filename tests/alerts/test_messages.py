"""An exception's alert in plain words: what happened, why, what to do, impact, owner, link."""

import pytest

from notifwatch.accounts.models import Team
from notifwatch.alerts.messages import (
    assigned_message,
    exception_message,
    impact_words,
    new_exception_message,
    silence_message,
)
from notifwatch.failures.actions import assign
from notifwatch.failures.models import FailureGroup
from tests.exceptions.data import bounced_order_confirmations
from tests.reviews.data import ago, silence

pytestmark = pytest.mark.django_db


@pytest.fixture
def bounced(json_source) -> FailureGroup:
    """Order confirmations bounced for three customers; one got it by SMS anyway."""
    return bounced_order_confirmations(json_source)


@pytest.fixture
def crm(db) -> Team:
    return Team.objects.create(name="CRM admins")


def test_an_assignment_reads_as_a_sentence_with_reason_action_impact_owner_and_link(
    bounced, crm, reviewer, admin_user, settings
):
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example.com"

    message = assigned_message(bounced, team=crm, assignee=None, actor=admin_user)

    assert message.subject == f"Assigned to CRM admins: {bounced.title}"
    lines = message.body.splitlines()
    assert lines[0] == "This exception was assigned to CRM admins by alice."
    assert f"Exception #{bounced.pk}: {bounced.title}" in lines
    assert "Why: The email address does not exist at the recipient's provider." in lines
    assert "What to do: Correct the customer's email address in the CRM, then resend." in lines
    assert "Impact: 3 customers affected, 2 not reached, 3 occurrences." in lines
    assert "Owner: CRM admins (team)" in lines
    url = f"https://notifwatch.example.com/exceptions/{bounced.pk}/"
    assert lines[-1] == f"Open it: {url}" and message.link == url


def test_the_body_names_no_raw_code_beyond_the_reason(bounced, crm, admin_user):
    message = assigned_message(bounced, team=crm, assignee=None, actor=admin_user)

    assert "5.1.1" not in message.body and "550" not in message.body


def test_the_payload_carries_id_kind_title_status_impact_owner_and_url(bounced, crm, reviewer):
    assign(bounced, team=crm, assignee=reviewer)
    group = FailureGroup.objects.get(pk=bounced.pk)

    payload = new_exception_message(group).payload

    exception = payload["exception"]
    assert payload["event"] == "new_exception"
    assert (exception["id"], exception["kind"], exception["status"]) == (
        group.pk,
        "delivery_failure",
        "assigned",
    )
    assert exception["title"] == group.title
    assert exception["impact"] == {
        "occurrences": 3,
        "customers_affected": 3,
        "customers_reached_anyway": 1,
        "customers_not_reached": 2,
    }
    assert exception["owner"] == {"team": "CRM admins", "assignee": "rita", "assignee_name": "rita"}
    assert exception["url"].endswith(f"/exceptions/{group.pk}/")


def test_a_recipient_address_never_shows_in_the_subject(bounced):
    FailureGroup.objects.filter(pk=bounced.pk).update(title="Shared address pat.smith@example.com")
    bounced.refresh_from_db()

    message = exception_message(bounced, event="x", headline="New exception", happened="Opened.")

    assert "pat.smith@example.com" not in message.subject
    assert "pat.smith@example.com" in message.body  # owners may see it


def test_an_unowned_exception_says_so(bounced):
    message = new_exception_message(bounced)

    assert "Owner: Nobody yet" in message.body.splitlines()


def test_a_silence_counts_occurrences_not_customers(json_source):
    group = silence(json_source, ago(hours=1))

    message = silence_message(group, came_back=False)

    assert message.subject.startswith("Billing sender went silent: ")
    assert message.body.splitlines()[0] == "Billing sender went silent."
    assert impact_words(group) == "1 occurrence."
    assert "Why: Billing sender stopped reporting while it normally would." in message.body
