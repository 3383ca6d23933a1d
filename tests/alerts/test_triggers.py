"""alert_on_history: what the exceptions' history (and their impact) records as alerts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.alerts.models import Alert, AlertCursor, AlertKind, Scope, Subscription
from notifwatch.alerts.triggers import alert_on_history, alert_thresholds
from notifwatch.failures.actions import assign, set_status, snooze
from notifwatch.failures.detection import wake_snoozed
from notifwatch.failures.models import GroupHistory, OwnerRule, Status
from notifwatch.worker.scheduling import REGISTRY
from tests.reviews.data import ago, bounces, silence

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(reviewer) -> Team:
    return Team.objects.create(name="CRM admins")


def subscribe(who, kind=AlertKind.ASSIGNED, **fields) -> Subscription:
    owner = {"team": who} if isinstance(who, Team) else {"user": who}
    return Subscription.objects.create(kind=kind, **{"channel": "email", **owner, **fields})


def started() -> None:
    """The job's first pass: it marks where alerts start."""
    alert_on_history()


def test_the_first_pass_over_an_old_history_alerts_nobody(json_source, reviewer, admin_user):
    subscribe(reviewer)
    group = bounces(json_source, "order_confirmation", 6, ago(days=1))
    assign(group, assignee=reviewer, actor=admin_user)

    counts = alert_on_history()

    assert Alert.objects.count() == 0 and counts["read"] == 0
    cursor = AlertCursor.objects.get(name="history")
    assert cursor.position == cursor.start == GroupHistory.objects.latest("id").pk


def test_an_assignment_alerts_the_new_person_and_team(json_source, reviewer, viewer, admin_user):
    crm = Team.objects.create(name="CRM admins")
    person = subscribe(reviewer)
    team_room = subscribe(crm, channel="chat", target="http://127.0.0.1:9/chat")
    bystander = subscribe(viewer)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=2))
    started()

    assign(group, team=crm, assignee=reviewer, actor=admin_user)
    counts = alert_on_history()

    alerts = Alert.objects.filter(kind=AlertKind.ASSIGNED)
    assert {a.subscription_id for a in alerts} == {person.pk, team_room.pk}
    assert bystander.pk not in {a.subscription_id for a in alerts}
    assert counts["assigned"] == 2
    history = GroupHistory.objects.get(group=group, kind="assigned")
    assert all(a.key.startswith(f"assigned:history:{history.pk}:") for a in alerts)
    assert alerts[0].subject.startswith("Assigned to CRM admins and rita: ")


def test_the_alert_names_the_owner_the_history_gave_not_the_current_one(
    json_source, reviewer, viewer, admin_user
):
    first = subscribe(reviewer)
    later = subscribe(viewer)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=2))
    started()

    assign(group, assignee=reviewer, actor=admin_user)
    assign(group, assignee=viewer, actor=admin_user)
    alert_on_history()

    to_rita = Alert.objects.get(subscription=first)
    to_victor = Alert.objects.get(subscription=later)
    assert "Assigned to rita" in to_rita.subject and "Assigned to victor" in to_victor.subject
    assert to_rita.payload["exception"]["owner"]["assignee"] == "rita"


def test_whoever_assigns_to_themselves_gets_no_alert(json_source, reviewer):
    subscribe(reviewer)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=2))
    started()

    assign(group, assignee=reviewer, actor=reviewer)
    alert_on_history()

    assert not Alert.objects.exists()


def test_an_owner_rule_routing_a_new_exception_alerts_its_team(json_source, crm):
    room = subscribe(crm)
    OwnerRule.objects.create(position=1, team=crm, purpose="invoice")
    started()

    bounces(json_source, "invoice", 2, ago(hours=1))
    alert_on_history()

    (alert,) = Alert.objects.filter(kind=AlertKind.ASSIGNED)
    assert alert.subscription == room
    assert "assigned to CRM admins by an owner rule" in alert.body


def test_running_the_job_twice_records_nothing_new(json_source, reviewer, admin_user):
    subscribe(reviewer)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=2))
    started()
    assign(group, assignee=reviewer, actor=admin_user)

    alert_on_history()
    again = alert_on_history()

    assert Alert.objects.count() == 1
    # The last minutes are read again (a late commit), and find their alerts already there.
    assert again["assigned"] == 1


def test_a_resolved_exception_that_comes_back_alerts_its_owners(json_source, reviewer, viewer):
    owner = subscribe(reviewer, AlertKind.REGRESSED)
    subscribe(viewer, AlertKind.REGRESSED)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=3))
    assign(group, assignee=reviewer)
    set_status(group, Status.RESOLVED, actor=reviewer)
    started()

    bounces(json_source, "order_confirmation", 2, ago(hours=1), first=3)
    alert_on_history()

    (alert,) = Alert.objects.filter(kind=AlertKind.REGRESSED)
    assert alert.subscription == owner
    assert alert.subject.startswith("Came back after it was resolved: ")
    assert "2 new occurrence(s) after it was resolved" in alert.body


def test_a_snoozed_exception_that_wakes_alerts_its_owners(json_source, reviewer, crm):
    crm.members.add(reviewer)
    member = subscribe(reviewer, AlertKind.WOKE)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=3))
    assign(group, team=crm)
    snooze(group, timezone.now() + timedelta(minutes=1), actor=reviewer)
    started()

    wake_snoozed(timezone.now() + timedelta(minutes=2))
    alert_on_history()

    (alert,) = Alert.objects.filter(kind=AlertKind.WOKE)
    assert alert.subscription == member
    assert alert.subject.startswith("Back from snooze: ")


def test_a_source_going_silent_alerts_its_owners_and_everyone_who_asked(
    json_source, reviewer, viewer, auditor, crm
):
    owners = subscribe(crm, AlertKind.SILENCE)
    everything = subscribe(viewer, AlertKind.SILENCE, scope=Scope.ALL)
    mine_only = subscribe(auditor, AlertKind.SILENCE)
    OwnerRule.objects.create(position=1, team=crm, kind="silence")
    started()

    silence(json_source, ago(hours=1))
    counts = alert_on_history()

    reached = {a.subscription_id for a in Alert.objects.filter(kind=AlertKind.SILENCE)}
    assert reached == {owners.pk, everything.pk}
    assert mine_only.pk not in reached
    assert counts["silence"] == 2
    alert = Alert.objects.filter(kind=AlertKind.SILENCE).first()
    assert alert.subject.startswith("Billing sender went silent: ")


def test_a_new_exception_alerts_once_its_impact_passes_the_threshold(json_source, viewer):
    watcher = subscribe(viewer, AlertKind.NEW_EXCEPTION, scope=Scope.ALL)
    started()

    group = bounces(json_source, "order_confirmation", 4, ago(hours=2))
    alert_on_history()
    assert not Alert.objects.filter(kind=AlertKind.NEW_EXCEPTION).exists()

    bounces(json_source, "order_confirmation", 1, ago(hours=1), first=4)
    alert_on_history()
    alert_on_history()

    (alert,) = Alert.objects.filter(kind=AlertKind.NEW_EXCEPTION)
    assert (alert.subscription, alert.group_id) == (watcher, group.pk)
    assert alert.key == f"new_exception:impact:{group.pk}:{watcher.pk}"
    assert "5 customers affected, 5 not reached" in alert.body


def test_thresholds_are_per_kind_and_come_from_the_setting(json_source, viewer, settings):
    subscribe(viewer, AlertKind.NEW_EXCEPTION, scope=Scope.ALL)
    settings.NOTIFWATCH_ALERT_THRESHOLDS = {"delivery_failure": 2, "silence": 5}
    started()

    bounces(json_source, "order_confirmation", 2, ago(hours=2))
    silence(json_source, ago(hours=1))
    alert_on_history()

    (alert,) = Alert.objects.filter(kind=AlertKind.NEW_EXCEPTION)
    assert alert.group.kind == "delivery_failure"
    assert alert_thresholds()["late"] == 5  # a kind left out keeps its default


def test_an_exception_from_before_the_first_pass_is_not_new(json_source, viewer):
    subscribe(viewer, AlertKind.NEW_EXCEPTION, scope=Scope.ALL)
    bounces(json_source, "order_confirmation", 9, ago(hours=2))
    started()

    alert_on_history()

    assert not Alert.objects.exists()


def test_the_worker_runs_the_job_every_minute():
    (job,) = [job for job in REGISTRY if job.name == "alert_on_history"]
    assert (job.task_path, job.interval_seconds) == (
        "notifwatch.alerts.triggers.alert_on_history",
        60,
    )


def test_a_person_given_to_a_teams_exception_reads_the_whole_owner(
    json_source, reviewer, admin_user
):
    crm = Team.objects.create(name="CRM admins")
    subscribe(reviewer)
    group = bounces(json_source, "order_confirmation", 3, ago(hours=2))
    assign(group, team=crm, actor=admin_user)
    started()

    assign(group, assignee=reviewer, actor=admin_user)
    alert_on_history()

    alert = Alert.objects.get()
    assert alert.subject.startswith("Assigned to rita: ")
    assert "Owner: CRM admins (team) · rita (person)" in alert.body
    owner = alert.payload["exception"]["owner"]
    assert (owner["team"], owner["assignee"]) == ("CRM admins", "rita")
