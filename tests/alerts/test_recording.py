"""record_alert: the right subscriptions, one alert each, never twice for one occurrence."""

import threading

import pytest
from django.db import connection

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Scope, Subscription, Timing
from notifwatch.alerts.recording import Message, alert_key, recipients, record_alert

pytestmark = pytest.mark.django_db

MESSAGE = Message(subject="Order confirmations bounced", body="3 customers not reached.")


@pytest.fixture
def crm(django_user_model, reviewer):
    team = Team.objects.create(name="CRM admins")
    team.members.add(reviewer)
    return team


def subscribe(who, kind=AlertKind.ASSIGNED, **fields) -> Subscription:
    owner = {"team": who} if isinstance(who, Team) else {"user": who}
    return Subscription.objects.create(kind=kind, channel="email", **owner, **fields)


def test_an_assignment_reaches_the_team_its_members_and_nobody_else(crm, reviewer, viewer):
    team_room = subscribe(crm)
    member = subscribe(reviewer)
    outsider = subscribe(viewer)

    found = set(recipients(AlertKind.ASSIGNED, teams=[crm]))

    assert found == {team_room, member}
    assert outsider not in found


def test_a_user_who_asked_for_every_exception_hears_of_all(crm, viewer):
    everything = subscribe(viewer, AlertKind.NEW_EXCEPTION, scope=Scope.ALL)

    assert list(recipients(AlertKind.NEW_EXCEPTION, teams=[crm])) == [everything]


def test_the_same_occurrence_is_recorded_once(crm, reviewer):
    subscribe(crm)
    subscribe(reviewer)

    first = record_alert(AlertKind.ASSIGNED, "group:1:history:7", MESSAGE, teams=[crm])
    again = record_alert(AlertKind.ASSIGNED, "group:1:history:7", MESSAGE, teams=[crm])

    assert len(first) == 2 and [a.pk for a in again] == [a.pk for a in first]
    assert Alert.objects.count() == 2


def test_a_daily_subscription_holds_its_alerts_but_not_health(reviewer):
    subscribe(reviewer, AlertKind.ASSIGNED, timing=Timing.DAILY)
    subscribe(reviewer, AlertKind.HEALTH, timing=Timing.DAILY)

    (assigned,) = record_alert(AlertKind.ASSIGNED, "a", MESSAGE, users=[reviewer])
    (health,) = record_alert(AlertKind.HEALTH, "h", MESSAGE, everyone=True)

    assert (assigned.status, health.status) == (AlertStatus.HELD, AlertStatus.PENDING)


def test_a_long_occurrence_never_cuts_the_recipient_from_the_key():
    assert alert_key("assigned", "x" * 400, 12345).endswith("x:12345")
    assert len(alert_key("assigned", "x" * 400, 12345)) == 300


@pytest.mark.django_db(transaction=True)
def test_two_workers_recording_at_once_make_one_alert(reviewer):
    subscribe(reviewer)
    start = threading.Barrier(2)
    errors = []

    def worker():
        try:
            start.wait(timeout=10)
            record_alert(AlertKind.ASSIGNED, "group:9:history:1", MESSAGE, users=[reviewer])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # SQLite's in-memory test database reports a lock instead of waiting: the loser then
    # recorded nothing, which is also "once". PostgreSQL waits, and the key decides.
    locked = [e for e in errors if connection.vendor == "sqlite" and "locked" in str(e)]
    assert errors == locked
    assert Alert.objects.count() == 1
