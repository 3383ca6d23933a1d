"""The weekly digest: a realistic week in words, once per week per subscription, on time."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from notifwatch.accounts.models import Membership, Team
from notifwatch.alerts.digest import send_weekly_digests, week_occurrence
from notifwatch.alerts.models import Alert, AlertKind, Subscription
from notifwatch.failures.actions import assign
from notifwatch.ingest.actions import save_source
from notifwatch.worker.scheduling import REGISTRY
from tests.reviews.data import ago, bounces, created, silence

pytestmark = pytest.mark.django_db


def digest_for(user, weekday: int = 0, hour: int = 8) -> Subscription:
    return Subscription.objects.create(
        user=user,
        kind=AlertKind.WEEKLY_DIGEST,
        channel="email",
        digest_weekday=weekday,
        digest_hour=hour,
    )


@pytest.fixture
def week(json_source, reviewer):
    """A week: order confirmations bouncing (owned), invoices bouncing (unowned), an old
    password-reset problem carried over, a quiet second source, and the first source silent."""
    crm = Team.objects.create(name="CRM admins")
    save_source(slug="crm-export", kind="csv", name="CRM export")
    orders = bounces(json_source, "order_confirmation", 7, ago(days=2))
    assign(orders, team=crm, assignee=reviewer)
    invoices = bounces(json_source, "invoice", 3, ago(days=1))
    old = created(bounces(json_source, "password_reset", 2, ago(days=10)), ago(days=10))
    quiet = silence(json_source, ago(hours=3))
    return {"orders": orders, "invoices": invoices, "old": old, "silence": quiet}


def test_the_digest_of_a_week_reads_well(week, reviewer):
    digest_for(reviewer, weekday=datetime.now(UTC).weekday(), hour=0)

    assert send_weekly_digests() == 1

    (alert,) = Alert.objects.filter(kind=AlertKind.WEEKLY_DIGEST)
    body = alert.body
    orders, invoices, old = week["orders"], week["invoices"], week["old"]
    assert body.startswith("Your weekly notification failure review: ")
    assert "Reported this week: Billing sender (10 notifications)." in body
    assert "Reported nothing this week: CRM export." in body
    assert f"Went silent: {week['silence'].title} (#{week['silence'].pk}, open)." in body
    assert "- Delivery failure: 2 (last week 1, up 1)" in body
    assert "- Silence: 1 (last week 0, up 1)" in body
    top = body.split("Top 5 open exceptions by customers not reached\n")[1].split("\n\n")[0]
    assert top.splitlines()[0] == (
        f"- #{orders.pk} {orders.title} — 7 customers affected, 7 not reached, 7 occurrences. "
        "Owner: CRM admins (team) · rita (person)."
    )
    assert [line.split()[1] for line in top.splitlines()] == [
        f"#{orders.pk}",
        f"#{invoices.pk}",
        f"#{old.pk}",
    ]
    unowned = body.split("Unowned (3)\n")[1].split("\n\n")[0]
    assert f"#{invoices.pk}" in unowned and f"#{orders.pk}" not in unowned
    carried = body.split("Carried over from before this week, still open (1)\n")[1]
    assert carried.splitlines()[0].startswith(f"- #{old.pk} {old.title}")
    assert body.endswith(
        "Start the review (the Start button on the reviews page): http://127.0.0.1:8000/reviews/"
    )
    assert alert.subject.endswith(": 4 open exceptions, 3 unowned")
    assert alert.payload["opened_by_kind"]["delivery_failure"] == {"this_week": 2, "last_week": 1}
    assert alert.payload["unowned"]["count"] == 3


def test_it_records_once_per_week_however_often_the_job_runs(week, reviewer):
    digest_for(reviewer, hour=0)
    monday = datetime(2025, 3, 17, 9, tzinfo=UTC)

    assert send_weekly_digests(monday) == 1
    assert send_weekly_digests(monday + timedelta(hours=1)) == 0
    assert send_weekly_digests(monday + timedelta(days=3)) == 0
    assert send_weekly_digests(monday + timedelta(days=7)) == 1

    keys = sorted(Alert.objects.values_list("key", flat=True))
    assert [key.split(":")[2] for key in keys] == ["2025-W12", "2025-W13"]


def test_not_before_the_hour_in_the_users_time_zone(reviewer):
    Membership.objects.filter(user=reviewer).update(time_zone="America/New_York")
    digest_for(reviewer, weekday=0, hour=8)
    # Monday 08:00 in New York is 12:00 UTC (daylight saving time).
    assert send_weekly_digests(datetime(2025, 3, 17, 11, 59, tzinfo=UTC)) == 0
    assert send_weekly_digests(datetime(2025, 3, 17, 12, 0, tzinfo=UTC)) == 1


def test_a_week_is_the_subscribers_own_iso_week():
    # Sunday night in Tokyo is already Monday: the new week.
    tokyo = datetime(2025, 3, 16, 16, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    assert week_occurrence(tokyo) == "week:2025-W12"


def test_a_worker_down_at_the_hour_sends_it_later_that_week(reviewer):
    digest_for(reviewer, weekday=0, hour=8)

    assert send_weekly_digests(datetime(2025, 3, 19, 15, tzinfo=UTC)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_record_one_digest(reviewer):
    digest_for(reviewer, hour=0)
    monday = datetime(2025, 3, 17, 9, tzinfo=UTC)
    start = threading.Barrier(2)
    errors = []

    def worker():
        try:
            start.wait(timeout=10)
            send_weekly_digests(monday)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Alert.objects.filter(kind=AlertKind.WEEKLY_DIGEST).count() == 1


def test_the_worker_looks_for_due_digests_every_five_minutes():
    (job,) = [job for job in REGISTRY if job.name == "send_weekly_digests"]
    assert (job.task_path, job.interval_seconds) == (
        "notifwatch.alerts.digest.send_weekly_digests",
        300,
    )
