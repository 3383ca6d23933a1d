"""The overview's rollup counts exactly what counting live counts, and keeps up with changes."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.deliveries import counts
from notifwatch.deliveries.counts import (
    INSTANT,
    PERIOD,
    PeriodStart,
    live_buckets,
    notification_buckets,
    refresh_notification_counts,
)
from notifwatch.deliveries.models import Notification, NotificationCount, NotificationCountMark
from notifwatch.deliveries.overview import CHART_HOURS, build_overview, chart_origin, fold
from tests.overview.conftest import BOUNCE, event, post

STATUSES = ["delivered", "delivered", "delivered", "bounced", "sent", "suppressed", "failed"]


def week_of_traffic(source, now: datetime, n: int = 160, seed: int = 5) -> None:
    """Notifications at random moments over 8 days, some exactly on period boundaries."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        at = now - timedelta(seconds=rng.randrange(8 * 24 * 3600))
        if i % 5 == 0:  # a quarter-hour mark: where rounding would go wrong
            at = counts.period_floor(at)
        status = rng.choice(STATUSES)
        extra = BOUNCE if status == "bounced" else {}
        channel = rng.choice(["email", "email", "sms", "push"])
        events.append(event(f"n{i}", status, at, channel=channel, **extra))
    # The edges: the start of the week and of the last day, to the second, and just after.
    for key, at in (
        ("w0", now - timedelta(days=7)),
        ("w1", now - timedelta(days=7) + timedelta(seconds=1)),
        ("d0", now - timedelta(days=1)),
        ("d1", now - timedelta(days=1) - timedelta(seconds=1)),
        ("now", now),
    ):
        events.append(event(key, "delivered", at))
    post(source, *events)


def both_ways(now: datetime) -> tuple[tuple, tuple]:
    week_start, day_start = now - timedelta(days=7), now - timedelta(days=1)
    origin = chart_origin(week_start)
    live = live_buckets(origin, [(week_start, now + INSTANT)], day_start, CHART_HOURS)
    rolled = notification_buckets(origin, week_start, day_start, now, CHART_HOURS)
    return fold(live), fold(rolled)


@pytest.fixture
def now() -> datetime:
    # Not on a period boundary, so every edge of the week is a part-period.
    return timezone.now().replace(second=17, microsecond=250000)


def test_the_rollup_counts_what_counting_live_counts(json_source, shop, now):
    week_of_traffic(json_source, now)
    week_of_traffic(shop, now, n=60, seed=9)
    refresh_notification_counts(now=now)

    live, rolled = both_ways(now)

    assert rolled == live
    folded, per_bucket = rolled
    assert sum(sum(values[:7]) for values in folded.values()) > 200
    # The rollup was used: whole periods are read from it, not from the notifications.
    assert NotificationCount.objects.filter(period_start__lt=now - timedelta(hours=2)).exists()


def test_the_rollup_is_exact_in_half_and_quarter_hour_time_zones(json_source, now):
    week_of_traffic(json_source, now)
    refresh_notification_counts(now=now)
    for zone in ("Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"):
        with timezone.override(zone):
            live, rolled = both_ways(now)
            assert rolled == live, zone
            origin = chart_origin(now - timedelta(days=7))
            assert timezone.localtime(origin).hour % 3 == 0
            assert timezone.localtime(origin).minute == 0


def test_the_page_shows_the_same_figures_from_the_rollup(json_source, now):
    week_of_traffic(json_source, now)
    before = build_overview(now)
    refresh_notification_counts(now=now)
    after = build_overview(now)

    assert after.total.week == before.total.week
    assert after.total.day == before.total.day
    assert [(r.label, r.week, r.day) for r in after.by_channel] == [
        (r.label, r.week, r.day) for r in before.by_channel
    ]
    assert after.chart_volume.table == before.chart_volume.table


def test_a_later_bounce_of_an_old_notification_is_counted_at_the_next_pass(json_source, now):
    three_days_ago = now - timedelta(days=3, minutes=7)
    post(json_source, event("old", "delivered", three_days_ago))
    refresh_notification_counts(now=now, full=True)
    post(json_source, event("old", "bounced", three_days_ago + timedelta(minutes=1), **BOUNCE))

    refresh_notification_counts(now=now + timedelta(minutes=1))

    later = now + timedelta(minutes=1)
    live, rolled = both_ways(later)
    assert rolled == live
    assert build_overview(later).total.week.failures == 1
    mark = NotificationCountMark.objects.get()
    assert mark.full_refreshed_at == now  # that pass recounted only what changed


def test_notifications_imported_late_for_last_week_are_counted_at_the_next_pass(json_source, now):
    post(json_source, event("today", "delivered", now - timedelta(hours=1)))
    refresh_notification_counts(now=now, full=True)
    # A backfill: yesterday's and last Tuesday's sends arrive after the fact.
    post(
        json_source,
        event("late-1", "delivered", now - timedelta(days=5, hours=3)),
        event("late-2", "failed", now - timedelta(days=2), error_code="550"),
    )

    result = refresh_notification_counts(now=now + timedelta(minutes=1))

    assert result["full"] is False
    live, rolled = both_ways(now + timedelta(minutes=1))
    assert rolled == live
    assert build_overview(now + timedelta(minutes=1)).total.week.sent == 3


def test_a_deleted_notification_leaves_the_counts_at_the_hourly_full_pass(json_source, now):
    post(json_source, event("a", "delivered", now - timedelta(days=2)))
    post(json_source, event("b", "delivered", now - timedelta(days=2)))
    refresh_notification_counts(now=now)
    Notification.objects.filter(notification_key="b").delete()

    assert refresh_notification_counts(now=now + timedelta(minutes=1))["full"] is False
    an_hour_later = now + timedelta(hours=1)
    assert refresh_notification_counts(now=an_hour_later)["full"] is True

    assert build_overview(an_hour_later).total.week.sent == 1
    live, rolled = both_ways(an_hour_later)
    assert rolled == live


def test_a_stale_rollup_is_not_used(json_source, now):
    post(json_source, event("a", "delivered", now - timedelta(days=2)))
    refresh_notification_counts(now=now)
    # The worker stopped; meanwhile the old notification bounced.
    post(
        json_source, event("a", "bounced", now - timedelta(days=2) + timedelta(minutes=1), **BOUNCE)
    )

    later = now + counts.STALE + timedelta(minutes=1)
    assert build_overview(later).total.week.failures == 1


def test_periods_older_than_eight_days_are_dropped(json_source, now):
    post(json_source, event("a", "delivered", now - timedelta(days=2)))
    refresh_notification_counts(now=now)
    refresh_notification_counts(now=now + timedelta(days=9), full=False)
    assert not NotificationCount.objects.exists()


def test_periods_start_exactly_on_quarter_hours(json_source):
    moments = [
        datetime(2026, 11, 16, 9, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 16, 9, 14, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 16, 9, 15, 0, tzinfo=UTC),
        datetime(2026, 11, 16, 23, 59, 59, tzinfo=UTC),
    ]
    post(json_source, *(event(f"q{i}", "delivered", at) for i, at in enumerate(moments)))
    periods = dict(
        Notification.objects.annotate(
            period=PeriodStart("first_event_at", counts.EPOCH, PERIOD.seconds // 60)
        ).values_list("notification_key", "period")
    )
    assert periods == {
        "q0": datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
        "q1": datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
        "q2": datetime(2026, 11, 16, 9, 15, tzinfo=UTC),
        "q3": datetime(2026, 11, 16, 23, 45, tzinfo=UTC),
    }
