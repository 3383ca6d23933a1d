"""Keyset paging: a page starts after the last row's sort values, never at an OFFSET, so page 300
costs what page 1 does. The cursor in the URL carries those values."""

from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import models
from django.db.models import F, Func, Q, QuerySet, Value
from django.db.models.lookups import LessThan

# --- Newest first by a time and the id: notifications, audit entries ---------------------


def time_cursor(moment: datetime, pk: int) -> str:
    """The last row's time and id: where the next (older) page starts."""
    return f"{moment.isoformat()}_{pk}"


def parse_time_cursor(value: str) -> tuple[datetime, int] | None:
    """(time, id), or None for the first page or a cursor that makes no sense."""
    when, _, pk = value.rpartition("_")
    try:
        parsed = datetime.fromisoformat(when)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), int(pk)
    except ValueError:
        return None


def older_than(rows: QuerySet, field: str, moment: datetime, pk: int) -> QuerySet:
    """The rows after (moment, pk) in newest-first order; the redundant `lte` bound lets the
    (field, id) index be used."""
    return rows.filter(
        Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "pk__lt": pk}),
        **{f"{field}__lte": moment},
    )


# --- Descending by several whole numbers: the exception queue's impact order -------------


class RowValue(Func):
    """`(a, b, c)`: compared as one value, so the planner can seek an index on (a, b, c)."""

    function = ""
    template = "(%(expressions)s)"
    output_field = models.BigIntegerField()


def rows_below(rows: QuerySet, keys: Sequence[str], values: Sequence[int]) -> QuerySet:
    """The rows whose `keys` come after `values` in descending order.

    A row-value comparison rather than `a < x OR (a = x AND b < y) ...`: the planner cannot
    seek an index with the OR form (the exception queue: 347 ms against about 1 ms).
    """
    return rows.filter(
        LessThan(
            RowValue(*(F(key) for key in keys)),
            RowValue(*(Value(value) for value in values)),
        )
    )


def numbers_cursor(values: Sequence[int], position: int) -> str:
    """The last row's sort values, and how many rows came before the next page (for display)."""
    return ".".join(str(value) for value in values) + f".{position}"


def parse_numbers_cursor(value: str, width: int) -> tuple[tuple[int, ...], int] | None:
    """(sort values, position), or None for the first page or a cursor that makes no sense."""
    parts = value.split(".")
    if len(parts) not in (width, width + 1):
        return None
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        return None
    if any(n < 0 for n in numbers):
        return None
    keys, position = numbers[:width], numbers[width:]
    return tuple(keys), (position[0] if position else 0)
