"""How the week's notifications ended, counted per source, channel and period, fast at any size.

The overview adds up a week of notifications on every visit. Counted live that is one pass over
the week's rows: 600 ms at a million a week on PostgreSQL. So the counts of whole quarter hours
are kept in a rollup (`NotificationCount`), recounted by the worker every minute, and the
overview reads the rollup for the whole periods and counts live only what the rollup cannot
answer exactly: the part-periods at the edges (the start of the week, the start of the last day)
and everything since the last recount. The result is the same as counting live.

Keeping the rollup right (`refresh_notification_counts`):
- A notification's counts change when it settles again (a late bounce, a retry, an adopted
  callback); every settle stamps `updated_at`. A pass recounts the periods of the notifications
  changed since the previous pass (with an overlap for transactions still open then).
- Deletions (an orphan callback adopted by its send record, a source removed) leave no trace,
  so a full recount of the 8 days runs every hour; so does the first pass.
- A rollup older than STALE is not used at all: with the worker stopped, the page is slower but
  never wrong by more than a minute's changes.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Count,
    DateTimeField,
    ExpressionWrapper,
    Func,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Cast
from django.utils import timezone

from notifwatch.deliveries.models import (
    FinalStatus,
    Notification,
    NotificationCount,
    NotificationCountMark,
    NotificationPeriodTotal,
)

# What is counted, in order (FinalStatus.values is rebuilt on every access).
STATUSES = tuple(FinalStatus.values)
COUNTED = (*STATUSES, "failures", "duplicates", "identity")

PERIOD = timedelta(minutes=15)
INSTANT = timedelta(microseconds=1)  # the resolution of stored times
# The overview's week, plus a day so a slow pass never leaves its first periods uncounted.
KEPT = timedelta(days=8)
FULL_EVERY = timedelta(hours=1)
# Changes committed by a transaction that was still open when the last pass read.
OVERLAP = timedelta(minutes=10)
STALE = timedelta(minutes=15)
# Periods are counted from here (any whole hour in UTC would do).
EPOCH = datetime(2000, 1, 3, tzinfo=UTC)


class PeriodStart(Func):
    """The start of the `minutes`-long period, counted from `origin`, that a moment falls in.

    Computed in the database without calling back into Python: TruncHour does so for every row
    on SQLite (~25 µs each). Counting from a local origin lines 3-hour buckets up with the
    user's marks in half-hour time zones.
    """

    output_field = DateTimeField()

    def __init__(self, expression, origin: datetime, minutes: int):
        super().__init__(expression, Value(origin, output_field=DateTimeField()))
        self.minutes = minutes

    def compiled(self, compiler) -> tuple[tuple[str, list], tuple[str, list]]:
        moment, origin = (compiler.compile(e) for e in self.get_source_expressions())
        return (moment[0], list(moment[1])), (origin[0], list(origin[1]))

    def as_sql(self, compiler, connection, **extra):
        # PostgreSQL: date_bin is the cheapest of the ways (a third faster than arithmetic on
        # EXTRACT(EPOCH ...), which is numeric).
        (moment, moment_params), (origin, origin_params) = self.compiled(compiler)
        return (
            f"date_bin('{self.minutes} minutes', {moment}, {origin})",
            [*moment_params, *origin_params],
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Stored as ISO text; strftime('%s') parses it in C into whole seconds, so a moment on a
        # period boundary lands exactly there (julianday() fractions can fall a hair short).
        # The fraction is cut off first: SQLite would round 09:14:59.9999 up to 09:15.
        # Moments are never before the origin, so integer division floors.
        (moment, moment_params), (origin, origin_params) = self.compiled(compiler)
        seconds = self.minutes * 60
        sql = (
            f"datetime(strftime('%%s', {origin}) + (strftime('%%s', substr({moment}, 1, 19))"
            f" - strftime('%%s', {origin})) / {seconds} * {seconds}, 'unixepoch')"
        )
        return sql, [*origin_params, *moment_params, *origin_params]


def period_floor(moment: datetime) -> datetime:
    return EPOCH + (moment - EPOCH) // PERIOD * PERIOD


def period_ceil(moment: datetime) -> datetime:
    floor = period_floor(moment)
    return floor if floor == moment else floor + PERIOD


# --- What the overview reads -----------------------------------------------------------------


def notification_buckets(
    origin: datetime, week_start: datetime, day_start: datetime, now: datetime, hours: int
) -> list[tuple]:
    """The week's notifications counted per chart bucket, last day or not, source and channel.

    Rows of (bucket start, started in the last day, source id, channel, *COUNTED): grouped by
    the last day as well, so the day's figures are exact rather than rounded to a bucket. A
    notification belongs to the moment it started. `origin` is a whole quarter hour.
    """
    refreshed = (
        NotificationCountMark.objects.filter(pk=1).values_list("refreshed_at", flat=True).first()
    )
    end = now + INSTANT  # what started at `now` itself counts
    if refreshed is None or not now - STALE <= refreshed <= now:
        return live_buckets(origin, [(week_start, end)], day_start, hours)
    covered = period_floor(refreshed)  # whole periods before this one were recounted
    first, day_period = period_ceil(week_start), period_floor(day_start)
    if covered <= first:
        return live_buckets(origin, [(week_start, end)], day_start, hours)
    # Live, in one query: the part-period at the start of the week, the period where the last
    # day begins (split by the exact moment), and everything since the last recount.
    edges = [(week_start, first), (day_period, day_period + PERIOD), (covered, end)]
    return rolled_buckets(origin, first, covered, day_period, hours) + live_buckets(
        origin, merged(edges), day_start, hours
    )


def within(field: str, spans: list[tuple[datetime, datetime | None]]) -> Q:
    """`field` in any of the [start, end) spans; an end of None means "and everything after"."""
    where = Q()
    for start, end in spans:
        where |= Q(**{f"{field}__gte": start}, **({f"{field}__lt": end} if end else {}))
    return where


def merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Non-empty spans, in order, with overlapping or touching ones joined."""
    joined: list[tuple[datetime, datetime]] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return joined


def rolled_buckets(
    origin: datetime, start: datetime, end: datetime, day_period: datetime, hours: int
) -> list[tuple]:
    """The rollup's whole periods in [start, end), except the one where the last day begins.

    Two groupings rather than one by all four keys: a few hundred rows instead of thousands
    (turning rows into Python tuples was half the time), the charts' from the periods' totals.
    Rows of the tables have no bucket, rows of the charts no source or channel, which is how
    `fold` tells them apart.
    """
    periods = NotificationCount.objects.filter(
        period_start__gte=start, period_start__lt=end
    ).exclude(period_start=day_period)
    sums = {name: Sum(name) for name in COUNTED}
    tables = (
        periods.annotate(
            last_day=ExpressionWrapper(Q(period_start__gt=day_period), BooleanField()),
            sender=Cast("source_id", BigIntegerField()),
        )
        .values("last_day", "sender", "channel")
        .annotate(**sums)
        .values_list("last_day", "sender", "channel", *COUNTED)
        .order_by()
    )
    charts = (
        NotificationPeriodTotal.objects.filter(period_start__gte=start, period_start__lt=end)
        .exclude(period_start=day_period)
        .annotate(bucket=PeriodStart("period_start", origin, hours * 60))
        .values("bucket")
        .annotate(**sums)
        .values_list("bucket", *COUNTED)
        .order_by()
    )
    return [(None, *row) for row in tables] + [
        (bucket, False, None, None, *values) for bucket, *values in charts
    ]


def live_buckets(
    origin: datetime, spans: list[tuple[datetime, datetime]], day_start: datetime, hours: int
) -> list[tuple]:
    """The same rows counted from the notifications that started in the [start, end) spans:
    one pass over them, on the first_event_at index."""
    in_last_day = ExpressionWrapper(Q(first_event_at__gte=day_start), BooleanField())
    return list(
        Notification.objects.filter(within("first_event_at", spans))
        .annotate(
            bucket=PeriodStart("first_event_at", origin, hours * 60),
            last_day=in_last_day,
            # Grouped by as an expression, not the bare column: given a GROUP BY led by
            # source_id, SQLite walks the source index and reads the table in random order,
            # twice as slow as a plain scan. (A no-op on PostgreSQL, which hashes either way.)
            sender=Cast("source_id", BigIntegerField()),
        )
        .values("bucket", "last_day", "sender", "channel")
        .annotate(**counts())
        .values_list("bucket", "last_day", "sender", "channel", *COUNTED)
        .order_by()
    )


def counts() -> dict:
    """The aggregates of COUNTED, in its order, over notifications."""
    by_status = {status: Count("id", filter=Q(final_status=status)) for status in STATUSES}
    return {
        **by_status,
        "failures": Count("id", filter=Q(counts_as_failure=True)),
        "duplicates": Count("id", filter=Q(duplicate_sends__gt=0)),
        "identity": Count("id", filter=~Q(identity_problem="")),
    }


# --- Keeping the rollup --------------------------------------------------------------------


def refresh_notification_counts(now: datetime | None = None, full: bool | None = None) -> dict:
    """Recount the periods that changed since the last pass (all 8 days every hour).

    Returns what it did, for the schedule's record: {"full": bool, "rows": rows written}.
    Two passes at once queue on the mark's row lock, so they never insert the same row twice.
    """
    now = now or timezone.now()
    horizon = period_floor(now - KEPT)
    NotificationCountMark.objects.get_or_create(pk=1)
    with transaction.atomic():
        mark = NotificationCountMark.objects.select_for_update().get(pk=1)
        if full is None:
            full = (
                mark.refreshed_at is None
                or mark.full_refreshed_at is None
                or now - mark.full_refreshed_at >= FULL_EVERY
                or now < mark.refreshed_at  # the clock went back: trust nothing
            )
        if full:
            NotificationCount.objects.all().delete()
            NotificationPeriodTotal.objects.all().delete()
            spans = [(horizon, None)]
        else:
            periods = changed_periods(mark.refreshed_at - OVERLAP, horizon)
            periods.add(period_floor(mark.refreshed_at))  # what was after the last pass
            periods |= set(periods_between(period_floor(mark.refreshed_at), now))
            stale = Q(period_start__in=periods) | Q(period_start__lt=horizon)
            NotificationCount.objects.filter(stale).delete()
            NotificationPeriodTotal.objects.filter(stale).delete()
            spans = [(p, p + PERIOD) for p in sorted(periods) if p >= horizon]
        spans = merged_open(spans)
        rows = recount(spans)
        add_up(spans)
        mark.refreshed_at = now
        if full:
            mark.full_refreshed_at = now
        mark.save()
    return {"full": full, "rows": rows}


def changed_periods(since: datetime, horizon: datetime) -> set[datetime]:
    """The periods in which the notifications settled again since `since` had started."""
    return set(
        Notification.objects.filter(updated_at__gte=since, first_event_at__gte=horizon)
        .annotate(period=PeriodStart("first_event_at", EPOCH, PERIOD.seconds // 60))
        .values_list("period", flat=True)
        .distinct()
        .order_by()
    )


def periods_between(start: datetime, end: datetime) -> list[datetime]:
    periods = []
    while start <= end:
        periods.append(start)
        start += PERIOD
    return periods


def merged_open(spans: list[tuple[datetime, datetime | None]]) -> list[tuple]:
    """Spans joined where they touch; an end of None means "and everything after"."""
    far = datetime.max.replace(tzinfo=UTC)
    joined = merged([(start, end or far) for start, end in spans])
    return [(start, None if end == far else end) for start, end in joined]


def recount(spans: list[tuple[datetime, datetime | None]]) -> int:
    """Count the notifications that started in `spans` into the rollup; returns rows written.

    INSERT ... SELECT (52k rows took 4 s as objects, at a million notifications).
    """
    if not spans:
        return 0
    counted_rows = (
        Notification.objects.filter(within("first_event_at", spans))
        .annotate(
            period=PeriodStart("first_event_at", EPOCH, PERIOD.seconds // 60),
            sender=Cast("source_id", BigIntegerField()),
        )
        .values("period", "sender", "channel")
        .annotate(**counts())
        .values_list("period", "sender", "channel", *COUNTED)
        .order_by()
    )
    return insert_from(NotificationCount, ("period_start", "source_id", "channel"), counted_rows)


def add_up(spans: list[tuple[datetime, datetime | None]]) -> int:
    """The periods' totals over sources and channels, from the rows just counted."""
    if not spans:
        return 0
    totals = (
        NotificationCount.objects.filter(within("period_start", spans))
        .values("period_start")
        .annotate(**{name: Sum(name) for name in COUNTED})
        .values_list("period_start", *COUNTED)
        .order_by()
    )
    return insert_from(NotificationPeriodTotal, ("period_start",), totals)


def insert_from(model, keys: tuple[str, ...], select_rows) -> int:
    """INSERT ... SELECT: `select_rows` (values_list of keys then COUNTED) compiled by the ORM
    for the database at hand, so the counts never travel through Python."""
    select, params = select_rows.query.sql_with_params()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in (*keys, *COUNTED))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {select}", params)
        return cursor.rowcount
