"""Small bar charts drawn on the server: geometry here, SVG markup in a template.

No JavaScript and no chart library: a chart is a handful of rectangles, gridlines and labels,
with a title, a one-paragraph description and a day-by-day table as its text alternatives.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 600, 190
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 12, 24
MAX_TICKS = 4


@dataclass
class Bucket:
    """One bar: a span of time and its value per series."""

    start: datetime
    end: datetime
    values: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.values.values())


@dataclass
class Segment:
    cls: str
    x: str
    y: str
    width: str
    height: str


@dataclass
class Bar:
    title: str
    segments: list[Segment]


@dataclass
class Tick:
    y: str
    label: str


@dataclass
class DayLabel:
    x: str
    label: str


@dataclass
class Series:
    key: str
    label: str
    cls: str
    total: int = 0

    @property
    def total_text(self) -> str:
        return f"{self.total:,}"


@dataclass
class DayRow:
    label: str
    values: list[str]
    total: str


@dataclass
class BarChart:
    id: str
    title: str
    description: str
    unit: str
    series: list[Series]
    bars: list[Bar]
    ticks: list[Tick]
    days: list[DayLabel]
    day_lines: list[str]
    table: list[DayRow]
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    baseline: str = f"{HEIGHT - BOTTOM}"

    @property
    def empty(self) -> bool:
        return self.total == 0

    @property
    def bars_svg(self) -> SafeString:
        """The bars as SVG markup: a title per bar (its text alternative), a rect per segment.

        Built here rather than in a template loop: a few hundred elements cost a template
        ~10 ms, string joins well under one.
        """
        return mark_safe(
            "".join(
                f"<g><title>{escape(bar.title)}</title>"
                + "".join(
                    f'<rect class="{s.cls}" x="{s.x}" y="{s.y}" width="{s.width}" '
                    f'height="{s.height}"/>'
                    for s in bar.segments
                )
                + "</g>"
                for bar in self.bars
                if bar.segments
            )
        )


def stacked_bars(
    chart_id: str,
    title: str,
    buckets: list[Bucket],
    series: list[tuple[str, str, str]],
    unit: str,
) -> BarChart:
    """Bars per bucket, each stacked bottom-up in the order of `series` (key, label, css class)."""
    legend = [Series(key, label, cls) for key, label, cls in series]
    for s in legend:
        s.total = sum(b.values.get(s.key, 0) for b in buckets)
    totals = [sum(b.values.get(s.key, 0) for s in legend) for b in buckets]
    top, step = nice_scale(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(buckets), 1)
    gap = min(2.0, slot * 0.2)

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    bars = []
    for i, bucket in enumerate(buckets):
        x = LEFT + i * slot + gap / 2
        base = 0
        segments = []
        for s in legend:
            value = bucket.values.get(s.key, 0)
            if value <= 0:
                continue
            y0, y1 = y_of(base), y_of(base + value)
            # A non-zero value stays visible: at least half a pixel high.
            height = max(y0 - y1, 0.5)
            segments.append(Segment(s.cls, fmt(x), fmt(y0 - height), fmt(slot - gap), fmt(height)))
            base += value
        bars.append(Bar(bar_title(bucket, legend, unit), segments))

    ticks = [Tick(fmt(y_of(value)), compact(value)) for value in range(0, top + 1, step)]
    days, day_lines = day_marks(buckets, slot)
    return BarChart(
        id=chart_id,
        title=title,
        description=describe(title, buckets, legend, totals, unit),
        unit=unit,
        series=legend,
        bars=bars,
        ticks=ticks,
        days=days,
        day_lines=day_lines,
        table=day_table(buckets, legend),
        total=sum(totals),
    )


def nice_scale(peak: int) -> tuple[int, int]:
    """A round top for the y axis and the step between its gridlines (at most MAX_TICKS)."""
    if peak <= 0:
        return 1, 1
    raw = peak / MAX_TICKS
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        step = max(1, int(factor * magnitude))
        if step * MAX_TICKS >= peak:
            return step * math.ceil(peak / step), step
    step = 10 * magnitude
    return step * math.ceil(peak / step), step


def compact(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if value >= 1000:
        return f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    return str(value)


def fmt(value: float) -> str:
    return f"{value:.1f}"


def span_words(bucket: Bucket) -> str:
    start, end = timezone.localtime(bucket.start), timezone.localtime(bucket.end)
    return f"{start:%a} {start.day} {start:%b}, {start:%H:%M}–{end:%H:%M}"


def bar_title(bucket: Bucket, legend: list[Series], unit: str) -> str:
    total = sum(bucket.values.get(s.key, 0) for s in legend)
    text = f"{span_words(bucket)}: {total:,} {unit}"
    if len(legend) > 1 and total:
        text += " — " + ", ".join(
            f"{s.label.lower()} {bucket.values.get(s.key, 0):,}" for s in legend
        )
    return text


def day_marks(buckets: list[Bucket], slot: float) -> tuple[list[DayLabel], list[str]]:
    """A label centred under each local day with room for it, a line where each day starts."""
    by_day: dict = {}
    for i, bucket in enumerate(buckets):
        by_day.setdefault(timezone.localtime(bucket.start).date(), []).append(i)
    labels, lines = [], []
    for n, (day, indexes) in enumerate(by_day.items()):
        first, last = indexes[0], indexes[-1]
        if n:
            lines.append(fmt(LEFT + first * slot))
        if len(indexes) * slot >= 40:
            centre = LEFT + (first + last + 1) * slot / 2
            labels.append(DayLabel(fmt(centre), f"{day:%a} {day.day}"))
    return labels, lines


def day_table(buckets: list[Bucket], legend: list[Series]) -> list[DayRow]:
    days: dict = {}
    for bucket in buckets:
        local = timezone.localtime(bucket.start)
        row = days.setdefault(local.date(), [0] * len(legend))
        for i, s in enumerate(legend):
            row[i] += bucket.values.get(s.key, 0)
    return [
        DayRow(f"{day:%a} {day.day} {day:%b}", [f"{v:,}" for v in values], f"{sum(values):,}")
        for day, values in days.items()
    ]


def describe(
    title: str, buckets: list[Bucket], legend: list[Series], totals: list[int], unit: str
) -> str:
    """The chart in one paragraph, for screen readers and for anyone who prefers words."""
    if not buckets:
        return f"{title}: no data."
    first, last = timezone.localtime(buckets[0].start), timezone.localtime(buckets[-1].end)
    period = f"from {first:%a} {first.day} {first:%b} {first:%H:%M} to {last:%a} {last:%H:%M}"
    total = sum(totals)
    if not total:
        return f"{title}, {period}: none."
    text = f"{title}, {period}: {total:,} {unit} in all"
    if len(legend) > 1:
        text += " (" + ", ".join(f"{s.label.lower()} {s.total:,}" for s in legend) + ")"
    peak = max(range(len(buckets)), key=lambda i: totals[i])
    return text + f". Busiest: {span_words(buckets[peak])}, with {totals[peak]:,}."
