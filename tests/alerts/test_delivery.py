"""deliver_alerts: each alert sent once, retried with backoff, failed for good after the last
attempt and then shown; send_daily_digests: held alerts gathered once a day."""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from notifwatch.accounts.models import Membership, Team
from notifwatch.alerts.actions import generate_secret
from notifwatch.alerts.delivery import backoff, deliver_alerts, send_daily_digests
from notifwatch.alerts.failed import failed_alerts
from notifwatch.alerts.models import Alert, AlertKind, AlertStatus, Channel, Subscription, Timing
from notifwatch.alerts.recording import Message, record_alert
from notifwatch.worker.scheduling import REGISTRY

pytestmark = pytest.mark.django_db

MESSAGE = Message(subject="Invoices bounce", body="4 customers not reached.", link="/exceptions/3/")


def chat_alert(user, url, occurrence="group:3:history:1", **subscription) -> Alert:
    sub = Subscription.objects.create(
        user=user, kind=AlertKind.ASSIGNED, channel=Channel.CHAT, target=url, **subscription
    )
    (alert,) = record_alert(
        AlertKind.ASSIGNED,
        occurrence,
        MESSAGE,
        subscriptions=Subscription.objects.filter(pk=sub.pk),
    )
    return alert


def test_the_jobs_are_registered():
    jobs = {job.name: job for job in REGISTRY}
    assert jobs["deliver_alerts"].task_path == "notifwatch.alerts.delivery.deliver_alerts"
    assert jobs["deliver_alerts"].interval_seconds == 60
    assert jobs["send_daily_digests"].task_path == "notifwatch.alerts.delivery.send_daily_digests"


def test_it_sends_a_due_alert_once_and_marks_it_sent(reviewer, receiver):
    chat = receiver()
    alert = chat_alert(reviewer, chat.url)
    now = timezone.now()

    assert deliver_alerts(now)["sent"] == 1
    assert deliver_alerts(now + timedelta(hours=1))["sent"] == 0

    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.sent_at) == (AlertStatus.SENT, 1, now)
    assert len(chat.received) == 1


def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt_after_backoff(reviewer, receiver):
    chat = receiver(answers=[503, 500, 200])
    alert = chat_alert(reviewer, chat.url)
    now = timezone.now()

    assert deliver_alerts(now)["retrying"] == 1
    alert.refresh_from_db()
    assert alert.next_attempt_at == now + timedelta(minutes=1)
    assert "answered 503" in alert.last_error

    # Not due before its backoff ends.
    assert deliver_alerts(now + timedelta(seconds=30)) == {
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "taken_by_another": 0,
    }
    assert deliver_alerts(now + timedelta(minutes=1))["retrying"] == 1
    alert.refresh_from_db()
    assert alert.next_attempt_at == now + timedelta(minutes=1) + timedelta(minutes=2)

    assert deliver_alerts(now + timedelta(minutes=3))["sent"] == 1
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == (AlertStatus.SENT, 3)
    assert len(chat.received) == 3


def test_backoff_doubles_from_a_minute():
    assert [backoff(n) for n in range(1, 6)] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16)]


def test_an_alert_that_always_fails_ends_failed_and_is_shown(reviewer, receiver, client, settings):
    settings.NOTIFWATCH_ALERT_ATTEMPTS = 6
    chat = receiver(answers=[500])
    alert = chat_alert(reviewer, chat.url)
    moment = timezone.now()
    for _ in range(6):
        deliver_alerts(moment)
        alert.refresh_from_db()
        moment = alert.next_attempt_at or moment

    assert (alert.status, alert.attempts) == (AlertStatus.FAILED, 6)
    assert len(chat.received) == 6
    assert deliver_alerts(moment + timedelta(days=1))["sent"] == 0
    assert failed_alerts().text == (
        "1 alert could not be sent in the last 7 days (last: chat webhook to "
        f"http://127.0.0.1:{chat.server.server_address[1]}/… answered 500)"
    )

    client.force_login(reviewer)
    overview = client.get("/").content.decode()
    assert "1 alert could not be sent in the last 7 days" in overview
    assert 'href="/alerts/"' in overview
    page = client.get("/alerts/").content.decode()
    assert "Could not be sent" in page and "answered 500" in page


def test_the_overview_is_quiet_when_no_alert_failed(reviewer, client):
    client.force_login(reviewer)
    assert "could not be sent" not in client.get("/").content.decode()


def run_together(work, count=2):
    start = threading.Barrier(count)
    errors = []

    def worker():
        try:
            start.wait(timeout=10)
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_at_once_send_each_alert_once(reviewer, receiver):
    # A slow receiver: the second worker reads the alerts while the first is still sending.
    secret = generate_secret()
    tool = receiver(delay=0.2, secret=secret)
    keys = set()
    for n in range(3):
        sub = Subscription.objects.create(
            user=reviewer,
            kind=AlertKind.ASSIGNED,
            channel=Channel.WEBHOOK,
            target=tool.url,
            secret=secret,
        )
        only = Subscription.objects.filter(pk=sub.pk)
        keys |= {
            a.key for a in record_alert(AlertKind.ASSIGNED, f"g:{n}", MESSAGE, subscriptions=only)
        }

    errors = run_together(lambda: deliver_alerts(timezone.now()))

    # SQLite's in-memory test database reports a lock instead of waiting: the loser then stops,
    # which is also "once". PostgreSQL waits, and the claim decides.
    sqlite_locks = [e for e in errors if connection.vendor == "sqlite" and "locked" in str(e)]
    assert errors == sqlite_locks
    sent_ids = [call.headers["webhook-id"] for call in tool.received]
    assert sorted(sent_ids) == sorted(keys)  # each alert once, none twice
    assert all(call.verified for call in tool.received)
    if not sqlite_locks:
        assert set(Alert.objects.values_list("status", "attempts")) == {(AlertStatus.SENT, 1)}


def test_daily_subscriptions_get_one_digest_at_their_hour_in_their_zone(reviewer, receiver):
    Membership.objects.filter(user=reviewer).update(time_zone="Europe/Paris")
    chat = receiver()
    sub = Subscription.objects.create(
        user=reviewer,
        kind=AlertKind.ASSIGNED,
        channel=Channel.CHAT,
        target=chat.url,
        timing=Timing.DAILY,
        digest_hour=8,
    )

    def held_alert(n: int) -> Alert:
        (alert,) = record_alert(
            AlertKind.ASSIGNED,
            f"group:{n}:history:1",
            Message(subject=f"Exception {n} assigned to you", body="…", link=f"/exceptions/{n}/"),
            subscriptions=Subscription.objects.filter(pk=sub.pk),
        )
        return alert

    held = [held_alert(n) for n in range(3)]
    assert {a.status for a in held} == {AlertStatus.HELD}
    assert deliver_alerts(timezone.now())["sent"] == 0  # held alerts wait for the digest
    tomorrow = timezone.now().astimezone(PARIS).date() + timedelta(days=1)

    assert send_daily_digests(local(tomorrow, 7, 50, PARIS)) == {"digests": 0}
    assert send_daily_digests(local(tomorrow, 8, 5, PARIS)) == {"digests": 1}
    assert send_daily_digests(local(tomorrow, 9, 0, PARIS)) == {"digests": 0}  # once a day

    digest = Alert.objects.get(key__contains=f"daily:{sub.pk}:{tomorrow.isoformat()}")
    assert digest.status == AlertStatus.PENDING
    assert digest.subject.endswith(": 3 alerts")
    assert "Exception 2 assigned to you" in digest.body
    assert set(digest.included.values_list("pk", flat=True)) == {a.pk for a in held}
    assert set(digest.included.values_list("status", flat=True)) == {AlertStatus.HELD}

    assert deliver_alerts(local(tomorrow, 8, 5, PARIS))["sent"] == 1
    (call,) = chat.received
    assert "3 alerts held for your daily digest" in call.json["text"]

    # Held after today's digest went out: in tomorrow's digest, alone.
    late = held_alert(9)
    assert send_daily_digests(local(tomorrow, 20, 0, PARIS)) == {"digests": 0}
    assert send_daily_digests(local(tomorrow + timedelta(days=1), 8, 0, PARIS)) == {"digests": 1}
    late.refresh_from_db()
    assert late.digest.subject.endswith(": 1 alert")


def test_a_team_digest_goes_at_its_hour_in_the_servers_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    team = Team.objects.create(name="Billing")
    sub = Subscription.objects.create(
        team=team,
        kind=AlertKind.ASSIGNED,
        channel=Channel.EMAIL,
        target="billing@example.com",
        timing=Timing.DAILY,
        digest_hour=9,
    )
    only = Subscription.objects.filter(pk=sub.pk)
    record_alert(AlertKind.ASSIGNED, "group:1:history:1", MESSAGE, subscriptions=only)
    day = timezone.now().date() + timedelta(days=2)

    assert send_daily_digests(local(day, 8, 59, new_york)) == {"digests": 0}
    assert send_daily_digests(local(day, 9, 0, new_york)) == {"digests": 1}


PARIS = ZoneInfo("Europe/Paris")


def local(day, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
