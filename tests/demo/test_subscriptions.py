"""The demo's subscriptions: assigning an exception to the reviewer or Engineering alerts them."""

import pytest

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import Alert, AlertKind, Channel
from notifwatch.alerts.triggers import alert_on_history
from notifwatch.demo.owners import ensure_owner_rules
from notifwatch.demo.subscriptions import DEMO_CHAT_URL, ensure_subscriptions
from notifwatch.demo.users import ensure_users
from notifwatch.failures.actions import assign
from tests.exceptions.data import bounced_order_confirmations

pytestmark = pytest.mark.django_db


def test_an_assignment_in_the_demo_makes_an_email_and_a_chat_message(json_source):
    users = ensure_users()
    ensure_owner_rules()
    assert ensure_subscriptions(users) == 6  # incl. the admin's and Engineering's health alerts
    assert ensure_subscriptions(users) == 0
    group = bounced_order_confirmations(json_source)
    alert_on_history()  # the worker's first pass

    assign(
        group,
        team=Team.objects.get(name="Engineering"),
        assignee=users["reviewer"],
        actor=users["demo"],
    )
    alert_on_history()

    alerts = Alert.objects.filter(kind=AlertKind.ASSIGNED).select_related("subscription")
    assert {(a.subscription.channel, a.subscription.target) for a in alerts} == {
        (Channel.EMAIL, ""),
        (Channel.CHAT, DEMO_CHAT_URL),
    }


def test_the_demo_admin_hears_of_notifwatchs_own_health_by_email(json_source):
    from django.core import mail

    from notifwatch.alerts.delivery import deliver_alerts
    from notifwatch.alerts.recording import Message, record_alert

    users = ensure_users()
    ensure_subscriptions(users)

    record_alert(
        AlertKind.HEALTH, "worker:test", Message("Worker stopped", "No heartbeat."), everyone=True
    )
    # Only the email: the chat room's catcher is not running in the tests.
    deliver_alerts(
        only=Alert.objects.filter(subscription__channel=Channel.EMAIL).values_list("pk", flat=True)
    )

    assert [m.to for m in mail.outbox] == [["demo@notifwatch.example"]]
