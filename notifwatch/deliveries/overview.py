"""The overview: how the last day and week went, who is silent, and what waits for a decision.

Everything comes from a few grouped queries, whatever the volume: the week's notifications
counted by source, channel and 3-hour bucket (the tables, the cards and the charts all add up
from it; mostly read from the rollup, see counts.py), one over the occurrences of late exceptions, one over the open
exceptions, one for the open silence exceptions, and one for the sources with their last raw
event (an index probe per source).
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from operator import add
from urllib.parse import urlencode

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from notifwatch.deliveries.charts import BarChart, Bucket, stacked_bars
from notifwatch.deliveries.counts import COUNTED, STATUSES, notification_buckets
from notifwatch.deliveries.models import Channel, FinalStatus
from notifwatch.deliveries.wording import words
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.ingest.models import Outcome, RawEvent, Source
from notifwatch.lib.moments import moment_words, parse_moment

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
CHART_HOURS = 3
# The queue's owner filter value for "no team, no person" (failures/filters.py).
UNOWNED = "unowned"
# Delivered, or delivered and then reported as spam: either way the customer got it.
REACHED = (FinalStatus.DELIVERED, FinalStatus.COMPLAINED)
UNSETTLED = (FinalStatus.PENDING, FinalStatus.DEFERRED)
REACHED_AT = tuple(COUNTED.index(s) for s in REACHED)
UNSETTLED_AT = tuple(COUNTED.index(s) for s in UNSETTLED)
FAILURES_AT = COUNTED.index("failures")
CHANNEL_LABELS = dict(Channel.choices)
# A raw event still `received` this long after it arrived was settled neither by its request
# nor by the worker's retry (due a minute later, then every minute): the worker is stopped.
UNPROCESSED_AFTER = timedelta(minutes=5)


@dataclass
class Tally:
    """What happened to the notifications that started in one period."""

    sent: int = 0
    reached: int = 0
    unsettled: int = 0
    failures: int = 0
    late: int = 0
    duplicates: int = 0
    identity: int = 0

    def add(self, other: "Tally") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def delivered_share(self) -> float | None:
        return self.reached / self.sent if self.sent else None

    @property
    def delivered_text(self) -> str:
        return share_text(self.reached, self.sent)

    @property
    def text(self) -> dict[str, str]:
        """Every count with thousands separators (the templates run without localisation)."""
        return {name: f"{getattr(self, name):,}" for name in self.__dataclass_fields__}

    def cells(self, filters: dict | None = None) -> list["Cell"]:
        """The table cells of one period: text first, colour only on top of it.

        With `filters` (the row's source or channel), each problem count links to the queue's
        exceptions of that kind there.
        """

        def problems(n: int, tone: str, kind: str, title: str) -> Cell:
            url = queue_url(**filters, kind=kind) if filters is not None and n else ""
            return Cell(f"{n:,}", tone if n else "zero", title, url)

        share = self.delivered_share
        delivered_title = (
            f"{self.reached:,} of {self.sent:,} delivered"
            + (f"; {self.unsettled:,} without an outcome yet" if self.unsettled else "")
            if self.sent
            else "nothing sent"
        )
        return [
            Cell(f"{self.sent:,}", "" if self.sent else "zero"),
            Cell(
                share_text(self.reached, self.sent),
                "zero" if share is None else "low" if share < 0.9 else "",
                delivered_title,
            ),
            problems(
                self.failures,
                "bad",
                Kind.DELIVERY_FAILURE,
                "not delivered, and not by the customer's choice",
            ),
            problems(self.late, "warn", Kind.LATE, "no final status within the timing window"),
            problems(
                self.duplicates, "warn", Kind.DUPLICATE_SEND, "the customer got it more than once"
            ),
            problems(
                self.identity, "warn", Kind.IDENTITY, "no customer id, or a callback without a send"
            ),
        ]


@dataclass
class Cell:
    text: str
    cls: str = ""
    title: str = ""
    url: str = ""


@dataclass
class Row:
    """One line of a table: a source or a channel, over the last day and the last week."""

    key: str
    label: str
    url: str = ""
    # The queue's filter for this row's exceptions: {"source": 3} or {"channel": "sms"}.
    filters: dict | None = None
    day: Tally = field(default_factory=Tally)
    week: Tally = field(default_factory=Tally)

    def day_cells(self) -> list[Cell]:
        return self.day.cells(self.filters)

    def week_cells(self) -> list[Cell]:
        return self.week.cells(self.filters)


@dataclass
class SourceState:
    """One active source in the coverage line."""

    source: Source
    state: str  # ok, silent, partial, never
    text: str
    url: str
    last_received: datetime | None = None


@dataclass
class Unprocessed:
    """A source with raw events that processing has not settled, for the health line."""

    source: Source
    failed: int  # an error on every automatic retry: they wait for a person
    waiting: int  # still `received` after UNPROCESSED_AFTER
    url: str

    @property
    def text(self) -> str:
        parts = []
        if self.failed:
            parts.append(
                f"{self.failed:,} raw event{'s' if self.failed != 1 else ''} could not be "
                "processed (an error on every try)"
            )
        if self.waiting:
            parts.append(
                f"{self.waiting:,} raw event{'s' if self.waiting != 1 else ''} waiting over "
                f"{UNPROCESSED_AFTER.seconds // 60} minutes to be processed"
            )
        return f"{self.source}: {' and '.join(parts)}"


@dataclass
class KindCount:
    kind: str
    label: str
    open: int
    not_reached: int
    url: str

    @property
    def open_text(self) -> str:
        return f"{self.open:,}"

    @property
    def not_reached_text(self) -> str:
        return f"{self.not_reached:,}"


@dataclass
class OwnerCount:
    label: str
    open: int
    url: str = ""

    @property
    def open_text(self) -> str:
        return f"{self.open:,}"


@dataclass
class Overview:
    now: datetime
    day_start: datetime
    week_start: datetime
    has_sources: bool
    coverage: list[SourceState]
    by_source: list[Row]
    by_channel: list[Row]
    total: Row
    quiet_sources: list[str]
    statuses: list[tuple[str, str, int]]
    quarantined: int
    chart_volume: BarChart
    chart_failures: BarChart
    by_kind: list[KindCount]
    by_owner: list[OwnerCount]
    open_total: int
    unowned: int
    unprocessed: list[Unprocessed] = field(default_factory=list)

    @property
    def unprocessed_waiting(self) -> bool:
        return any(u.waiting for u in self.unprocessed)

    @property
    def unprocessed_failed(self) -> bool:
        return any(u.failed for u in self.unprocessed)

    @property
    def silent(self) -> list[SourceState]:
        return [s for s in self.coverage if s.state in ("silent", "partial")]

    @property
    def reporting(self) -> int:
        return sum(1 for s in self.coverage if s.state == "ok")

    @property
    def never(self) -> int:
        return sum(1 for s in self.coverage if s.state == "never")

    @property
    def status_texts(self) -> list[tuple[str, str, str]]:
        return [(value, label, f"{n:,}") for value, label, n in self.statuses if n]

    @property
    def open_text(self) -> str:
        return f"{self.open_total:,}"

    @property
    def unowned_text(self) -> str:
        return f"{self.unowned:,}"

    @property
    def unowned_url(self) -> str:
        return queue_url(owner=UNOWNED)


def build_overview(now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    day_start, week_start = now - DAY, now - WEEK
    known = all_sources(week_start, now)
    sources = [s for s in known if s.is_active]

    origin = chart_origin(week_start)
    folded, per_bucket = fold(
        notification_buckets(origin, week_start, day_start, now, hours=CHART_HOURS)
    )
    late = late_counts()
    by_source, by_channel, total = tabulate(folded, late, {s.pk: s for s in known})
    open_rows = open_exception_rows()
    silences = open_silences()

    shown = {row.key for row in by_source}
    volume, failures = charts(per_bucket, origin, now)
    return Overview(
        now=now,
        day_start=day_start,
        week_start=week_start,
        has_sources=bool(sources) or bool(by_source),
        coverage=coverage(sources, silences, now),
        by_source=by_source,
        by_channel=by_channel,
        total=total,
        quiet_sources=[str(s) for s in sources if str(s.pk) not in shown],
        statuses=week_statuses(folded),
        quarantined=sum(s.quarantined_week or 0 for s in sources),
        chart_volume=volume,
        chart_failures=failures,
        by_kind=kind_counts(open_rows),
        by_owner=owner_counts(open_rows),
        open_total=sum(r["n"] for r in open_rows),
        unowned=sum(r["unowned"] for r in open_rows),
        unprocessed=[
            Unprocessed(s, s.failed_raw or 0, s.waiting_raw or 0, source_url(s))
            for s in known
            if s.failed_raw or s.waiting_raw
        ],
    )


# --- Queries ------------------------------------------------------------------------------


def all_sources(week_start: datetime, now: datetime | None = None) -> list[Source]:
    """Sources with their last raw event, the week's unreadable ones and the unprocessed ones.

    Each is a correlated subquery on the (source, received_at) or (source, outcome,
    received_at) index: a probe per source, not a scan of the raw events.
    """
    now = now or timezone.now()
    raws = RawEvent.objects.filter(source=OuterRef("pk"))
    # Calls with a bad signature are not the source speaking (they have their own exception).
    last = raws.exclude(outcome=Outcome.REJECTED).order_by("-received_at").values("received_at")
    quarantined = (
        raws.filter(outcome=Outcome.QUARANTINED, received_at__gte=week_start)
        .order_by()
        .values("source")
        .annotate(n=Count("id"))
        .values("n")
    )
    failed = raws.filter(outcome=Outcome.FAILED).order_by().values("source")
    waiting = (
        raws.filter(outcome=Outcome.RECEIVED, received_at__lt=now - UNPROCESSED_AFTER)
        .order_by()
        .values("source")
    )
    return list(
        Source.objects.only("id", "slug", "name", "kind", "is_active")
        .annotate(
            last_received=Subquery(last[:1]),
            quarantined_week=Subquery(quarantined),
            failed_raw=Subquery(failed.annotate(n=Count("id")).values("n")),
            waiting_raw=Subquery(waiting.annotate(n=Count("id")).values("n")),
        )
        .order_by("name", "slug")
    )


def late_counts() -> list[dict]:
    """Late notifications as the late exceptions count them, by when they became late.

    Whatever the exception's status: resolving it does not make them on time. Read from the
    figures each exception keeps of its last 7 days and 24 hours (refreshed by every detection
    pass), not counted from the occurrences: 50-90 ms at a million notifications a week.
    """
    return list(
        FailureGroup.objects.filter(kind=Kind.LATE, recent_occurrences__gt=0)
        .values("source_id", "channel")
        .annotate(week=Sum("recent_occurrences"), day=Sum("day_occurrences"))
        .order_by()
    )


def open_exception_rows() -> list[dict]:
    return list(
        FailureGroup.objects.open_for_review()
        .values("kind", "team_id", "team__name")
        .annotate(
            n=Count("id"),
            unowned=Count("id", filter=Q(team__isnull=True, assignee__isnull=True)),
            not_reached=Sum("customers_not_reached"),
        )
        .order_by()
    )


def open_silences() -> list[FailureGroup]:
    """Per source, its newest open silence of the whole source and of one purpose.

    Each carries `others`: how many more of its sort the source has. Counted in the database
    and only the newest fetched: with thousands of open silences, building every one cost 38 ms.
    """
    silences = FailureGroup.objects.open_for_review().filter(
        kind=Kind.SILENCE, source__isnull=False
    )
    newest = list(
        silences.annotate(whole=ExpressionWrapper(Q(purpose=""), BooleanField()))
        .values("source_id", "whole")
        .annotate(n=Count("id"), last=Max("last_seen"))
        .order_by()
    )
    if not newest:
        return []
    which = Q()
    for row in newest:
        which |= Q(source_id=row["source_id"], last_seen=row["last"]) & (
            Q(purpose="") if row["whole"] else ~Q(purpose="")
        )
    counts = {(row["source_id"], row["whole"]): row["n"] for row in newest}
    found: dict[tuple[int, bool], FailureGroup] = {}
    for group in (
        silences.filter(which)
        .only("id", "source_id", "purpose", "detail", "last_seen")
        .order_by("-last_seen", "-id")
    ):
        key = (group.source_id, not group.purpose)
        if key not in found:
            group.others = counts[key] - 1
            found[key] = group
    return sorted(found.values(), key=lambda g: g.last_seen, reverse=True)


# --- Shaping ------------------------------------------------------------------------------


def fold(counted: list[tuple]) -> tuple[dict[tuple, list[int]], dict[datetime, list[int]]]:
    """The counts per (source, channel, started in the last day), and per chart bucket.

    A row with no channel counts only for its bucket, one with no bucket only for its source
    and channel: what a query grouping by both sets separately returns.
    """
    folded: dict[tuple, list[int]] = {}
    per_bucket: dict[datetime, list[int]] = {}
    for row in counted:
        bucket, last_day, source_id, channel, *values = row
        for table, key in (
            (folded, (source_id, channel, last_day) if channel is not None else None),
            (per_bucket, bucket),
        ):
            if key is None:
                continue
            seen = table.get(key)
            table[key] = values if seen is None else list(map(add, seen, values))
    return folded, per_bucket


def tally_of(values: list[int]) -> Tally:
    return Tally(
        sent=sum(values[: len(STATUSES)]),
        reached=sum(values[i] for i in REACHED_AT),
        unsettled=sum(values[i] for i in UNSETTLED_AT),
        failures=values[FAILURES_AT],
        duplicates=values[FAILURES_AT + 1],
        identity=values[FAILURES_AT + 2],
    )


def tabulate(
    folded: dict[tuple, list[int]], late: list[dict], sources: dict[int, Source]
) -> tuple[list[Row], list[Row], Row]:
    """Per source, per channel and in total, over the last day and the last week."""
    by_source: dict[str, Row] = {}
    by_channel: dict[str, Row] = {}
    total = Row("total", "All sources", filters={})

    def rows_for(source_id: int | None, channel: str) -> list[Row]:
        source_key = str(source_id)
        if source_key not in by_source:
            source = sources.get(source_id)
            by_source[source_key] = Row(
                source_key,
                str(source) if source else f"Source #{source_id}",
                source_url(source) if source else "",
                {"source": source_id},
            )
        if channel not in by_channel:
            label = CHANNEL_LABELS.get(channel, channel or "Other")
            by_channel[channel] = Row(channel, label, filters={"channel": channel})
        return [by_source[source_key], by_channel[channel], total]

    for (source_id, channel, last_day), values in folded.items():
        tally = tally_of(values)
        for target in rows_for(source_id, channel):
            target.week.add(tally)
            if last_day:
                target.day.add(tally)
    for row in late:
        if row["source_id"] is None:
            continue
        for target in rows_for(row["source_id"], row["channel"] or "other"):
            target.week.late += row["week"]
            target.day.late += row["day"]

    def ordered(rows: dict[str, Row]) -> list[Row]:
        return sorted(rows.values(), key=lambda r: (-r.week.sent, r.label.lower()))

    return ordered(by_source), ordered(by_channel), total


def source_url(source: Source) -> str:
    return reverse("source_detail", args=[source.slug])


def week_statuses(folded: dict[tuple, list[int]]) -> list[tuple[str, str, int]]:
    totals = [sum(values[i] for values in folded.values()) for i in range(len(STATUSES))]
    return [
        (value, label, n) for (value, label), n in zip(FinalStatus.choices, totals, strict=True)
    ]


def chart_origin(week_start: datetime) -> datetime:
    """The local 3-hour mark at or before the start of the week: where the charts begin."""
    local = timezone.localtime(week_start)
    return local.replace(
        hour=local.hour - local.hour % CHART_HOURS, minute=0, second=0, microsecond=0
    )


def charts(
    per_bucket: dict[datetime, list[int]], origin: datetime, now: datetime
) -> tuple[BarChart, BarChart]:
    """The week in 3-hour buckets: volume by outcome, and failures on their own scale."""
    step = timedelta(hours=CHART_HOURS)
    buckets = [
        Bucket(origin + i * step, origin + (i + 1) * step)
        for i in range(math.ceil((now - origin) / step))
    ]
    for start, values in per_bucket.items():
        index = (start - origin) // step
        if not 0 <= index < len(buckets):
            continue
        tally = tally_of(values)
        buckets[index].values = {
            "reached": tally.reached,
            "failures": tally.failures,
            "other": tally.sent - tally.reached - tally.failures,
        }
    volume = stacked_bars(
        "chart-volume",
        "Notifications sent, per 3 hours",
        buckets,
        [
            ("reached", "Delivered", "c-good"),
            ("failures", "Failed", "c-bad"),
            ("other", "Pending or opted out", "c-other"),
        ],
        unit="notifications",
    )
    failures = stacked_bars(
        "chart-failures",
        "Failures, per 3 hours",
        buckets,
        [("failures", "Failed", "c-bad")],
        unit="failures",
    )
    return volume, failures


def coverage(
    sources: list[Source], silences: list[FailureGroup], now: datetime
) -> list[SourceState]:
    """Each active source: reporting, silent (an open silence exception), or never heard from."""
    whole: dict[int, FailureGroup] = {}
    purposes: dict[int, FailureGroup] = {}
    for group in silences:
        (purposes if group.purpose else whole).setdefault(group.source_id, group)
    states = []
    for source in sources:
        last = source.last_received
        if source.pk in whole:
            group = whole[source.pk]
            states.append(
                SourceState(
                    source,
                    "silent",
                    silence_words(source, group, last, now),
                    group_url(group),
                    last,
                )
            )
        elif source.pk in purposes:
            group = purposes[source.pk]
            text = silence_words(source, group, last, now)
            more = getattr(group, "others", 0)
            if more:
                text += f" (and {more} other notification type{'s' if more > 1 else ''})"
            states.append(SourceState(source, "partial", text, group_url(group), last))
        elif last is None:
            states.append(
                SourceState(source, "never", f"{source}: no events yet", source_url(source))
            )
        else:
            ago = timesince(last, now, depth=1) if last < now else "0\xa0minutes"
            states.append(
                SourceState(
                    source, "ok", f"{source}: last event {ago} ago", source_url(source), last
                )
            )
    order = {"silent": 0, "partial": 1, "never": 2, "ok": 3}
    return sorted(states, key=lambda s: order[s.state])


def silence_words(source: Source, group: FailureGroup, last: datetime | None, now: datetime) -> str:
    """'Postmark: no events since Tue 14:00', from the exception's facts and the raw events."""
    detail = group.detail if isinstance(group.detail, dict) else {}
    observed = detail.get("observed") or 0
    hours = detail.get("hours") or 0
    if group.purpose:
        what = f"no {words(group.purpose).lower()} sends"
        last = parse_moment(detail.get("last_seen"))
        noun = f"{words(group.purpose).lower()} events"
    elif detail.get("mode") == "provider_stopped_reporting":
        what, noun = "no delivery reports", "delivery reports"
    else:
        what, noun = "no events", "events"
    if observed and hours:
        expected = round(detail.get("expected") or 0)
        return (
            f"{source}: only {observed} {noun} in the last {hours} hour{'s' if hours != 1 else ''}"
            + (f", about {expected} expected" if expected else "")
        )
    if last:
        return f"{source}: {what} since {moment_words(last, now)}"
    return f"{source}: {what} lately"


def kind_counts(rows: list[dict]) -> list[KindCount]:
    open_by_kind: dict[str, int] = defaultdict(int)
    not_reached: dict[str, int] = defaultdict(int)
    for row in rows:
        open_by_kind[row["kind"]] += row["n"]
        not_reached[row["kind"]] += row["not_reached"] or 0
    return [
        KindCount(value, label, open_by_kind[value], not_reached[value], queue_url(kind=value))
        for value, label in Kind.choices
    ]


def owner_counts(rows: list[dict]) -> list[OwnerCount]:
    """Open exceptions per team; those with a person but no team apart (unowned are shown apart)."""
    teams: dict[int, OwnerCount] = {}
    person_only = 0
    for row in rows:
        if row["team_id"] is None:
            person_only += row["n"] - row["unowned"]
            continue
        owner = teams.setdefault(
            row["team_id"], OwnerCount(row["team__name"], 0, queue_url(owner=row["team_id"]))
        )
        owner.open += row["n"]
    owners = sorted(teams.values(), key=lambda o: (-o.open, o.label.lower()))
    if person_only:
        owners.append(OwnerCount("A person, no team", person_only))
    return owners


# --- Words --------------------------------------------------------------------------------


def queue_url(**filters) -> str:
    return queue_base() + "?" + urlencode(filters)


@cache
def queue_base() -> str:
    # A table links to the queue a hundred times; reversing costs ~15 µs each time.
    return reverse("exception_list")


def group_url(group: FailureGroup) -> str:
    return reverse("exception_detail", args=[group.pk])


def share_text(part: int, whole: int) -> str:
    """'97.3%', rounded down (in integers, no float surprises) so 100% means every one."""
    if not whole:
        return "–"
    tenths = part * 1000 // whole
    return "100%" if tenths >= 1000 else f"{tenths // 10}.{tenths % 10}%"
