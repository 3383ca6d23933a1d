"""Server-drawn bar charts: geometry and words."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.deliveries.charts import Bucket, compact, nice_scale, stacked_bars

SERIES = [("ok", "Delivered", "c-good"), ("bad", "Failed", "c-bad")]


def buckets(start: datetime, values: list[tuple[int, int]]) -> list[Bucket]:
    return [
        Bucket(
            start + timedelta(hours=3 * i),
            start + timedelta(hours=3 * (i + 1)),
            {"ok": a, "bad": b},
        )
        for i, (a, b) in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("peak", "top", "step"),
    [(0, 1, 1), (1, 1, 1), (7, 8, 2), (350, 400, 100), (1234, 1500, 500), (10, 10, 5)],
)
def test_it_picks_a_round_scale(peak, top, step):
    assert nice_scale(peak) == (top, step)


def test_it_writes_big_numbers_short():
    assert [compact(n) for n in (0, 999, 1000, 1260, 2_500_000)] == [
        "0",
        "999",
        "1k",
        "1.3k",
        "2.5M",
    ]


def test_it_stacks_each_bar_from_the_baseline():
    start = datetime(2025, 3, 10, tzinfo=UTC)
    chart = stacked_bars("c", "Sent", buckets(start, [(30, 10), (0, 0), (5, 0)]), SERIES, "sent")

    first, empty, third = chart.bars
    ok, bad = first.segments
    assert float(ok.y) + float(ok.height) == pytest.approx(float(chart.baseline))
    # Failed sits on top of delivered, and the tallest bar reaches the top of the scale.
    assert float(bad.y) + float(bad.height) == pytest.approx(float(ok.y))
    assert float(bad.y) == pytest.approx(12.0)
    assert empty.segments == []
    assert [s.total for s in chart.series] == [35, 10]
    assert first.title == "Mon 10 Mar, 00:00–03:00: 40 sent — delivered 30, failed 10"


def test_it_describes_the_chart_in_words():
    start = datetime(2025, 3, 10, tzinfo=UTC)
    chart = stacked_bars("c", "Sent", buckets(start, [(30, 10), (50, 2)]), SERIES, "sent")
    assert chart.description == (
        "Sent, from Mon 10 Mar 00:00 to Mon 06:00: 92 sent in all (delivered 80, failed 12). "
        "Busiest: Mon 10 Mar, 03:00–06:00, with 52."
    )
    assert [(r.label, r.values, r.total) for r in chart.table] == [
        ("Mon 10 Mar", ["80", "12"], "92")
    ]


def test_it_labels_days_in_the_users_time_zone():
    start = datetime(2025, 3, 9, 23, tzinfo=UTC)  # midnight in Paris
    with timezone.override("Europe/Paris"):
        chart = stacked_bars("c", "Sent", buckets(start, [(1, 0)] * 16), SERIES, "sent")
    assert [d.label for d in chart.days] == ["Mon 10", "Tue 11"]
    assert len(chart.day_lines) == 1


def test_it_is_empty_without_data():
    start = datetime(2025, 3, 10, tzinfo=UTC)
    chart = stacked_bars("c", "Sent", buckets(start, [(0, 0)] * 3), SERIES, "sent")
    assert chart.empty
    assert chart.description.endswith(": none.")
