"""The weekly figures an exception keeps: counted as it grows, recounted as days pass."""

from datetime import timedelta

from django.utils import timezone

from notifwatch.failures.detection import refresh_growth
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup
from tests.exceptions.data import simple_problem


def figures(group: FailureGroup) -> tuple[int, int, int]:
    group.refresh_from_db()
    return group.day_occurrences, group.recent_occurrences, group.week_before_occurrences


def test_figures_follow_the_clock(db):
    now = timezone.now()
    ages = [timedelta(hours=1), timedelta(days=3), timedelta(days=10)]
    (pk,) = record_problems(
        [simple_problem("f", i, occurred_at=now - age) for i, age in enumerate(ages)],
        rule="tests",
    )
    group = FailureGroup.objects.get(pk=pk)
    # Last 24 hours, last 7 days, the 7 days before.
    assert figures(group) == (1, 2, 1)
    assert refresh_growth(now) == 0  # already right

    assert refresh_growth(now + timedelta(days=2)) == 1
    assert figures(group) == (0, 2, 1)
    assert refresh_growth(now + timedelta(days=6)) == 1
    assert figures(group) == (0, 1, 1)
    assert refresh_growth(now + timedelta(days=30)) == 1
    assert figures(group) == (0, 0, 0)
    assert refresh_growth(now + timedelta(days=31)) == 0  # nothing left to look at


def test_pages_read_the_figures(client, viewer, db):
    now = timezone.now()
    (pk,) = record_problems(
        [simple_problem("p", h, occurred_at=now - timedelta(days=8, hours=h)) for h in range(3)]
        + [simple_problem("p", 10 + h, occurred_at=now - timedelta(hours=h)) for h in range(5)],
        rule="tests",
    )
    client.force_login(viewer)
    detail = client.get(f"/exceptions/{pk}/").content.decode()
    assert "5 this week, 3 the week before" in detail
    queue = client.get("/exceptions/").content.decode()
    assert "5 in the last 7 days, 3 in the 7 before" in queue
