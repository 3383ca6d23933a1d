"""Exports of notifications, delivery events, exceptions and the audit trail, in constant memory.

Plain functions, used by ``manage.py export`` and by the pages' downloads (``downloads.py``):

- ``rows(kind, ...)`` returns ``(header, iterator)``. The iterator yields one list of typed cells
  per row (text, int, bool or None, aware datetime, ``Json`` for JSON values, a list for id lists)
  and reads the database lazily, 2,000 rows at a time.
- ``write_csv`` / ``write_jsonl`` write those rows to a text stream; ``csv_chunks`` /
  ``jsonl_chunks`` yield the same text piece by piece (for ``StreamingHttpResponse``).
- ``Counted`` counts the rows a writer took; ``record_export`` writes the ``export.downloaded``
  audit entry of one export run with that count.

Columns (stable; new columns are only ever appended):

notifications
    source, notification_key, channel, purpose, customer_id, recipient, refs, final_status,
    reason_category, readable_reason, fix_owner, permanent, counts_as_failure, attempts,
    duplicate_sends, identity_problem, first_event_at, settled_at, exception_ids,
    provider, provider_message_id, error_code, error_message, suggested_action, last_event_at
events
    source, notification_key, event_id, event_type, occurred_at, received_at, attempt, provider,
    provider_message_id, error_code, error_message, reason_category, permanent, duplicate_count
exceptions
    exception_id, kind, status, title, readable_reason, suggested_action, fix_owner, source,
    channel, purpose, reason_category, team, assignee, customers_affected,
    customers_reached_anyway, customers_not_reached, occurrences, first_seen, last_seen,
    resolved_at, snoozed_until, merged_into, url
audit
    at, actor, action, target_type, target_id, target_label, old, new, detail

Cell formats. CSV: booleans ``true``/``false``, empty when unknown; datetimes ISO 8601 in UTC
with ``Z``; ``refs``/``old``/``new`` as compact JSON text; ``exception_ids`` space-separated
(the exceptions with an occurrence of that notification, lowest id first). JSON lines: one
object per row keyed by the header, with JSON booleans/null, the same datetime text, and
``refs``/``old``/``new``/``exception_ids`` as JSON values.

Filters: ``since`` (inclusive) and ``until`` (exclusive) apply to ``last_event_at``
(notifications), ``occurred_at`` (events) and ``at`` (audit). An exception spans time, so for
``exceptions`` they keep the ones that occurred in the window: last seen at or after ``since``,
first seen before ``until``. ``source_slug`` keeps one source's notifications, events or
exceptions; for ``audit`` it keeps the entries whose target is that source. Rows come oldest
first (by ``last_event_at``, ``occurred_at``, ``last_seen`` or ``at``, then id).

Exceptions: every one, merged ones included (``merged_into`` names the exception that carries
on; its ``status`` is what it was left with). ``readable_reason`` and ``suggested_action`` are
the exception page's explanation; ``fix_owner`` is a vocabulary value; ``team`` is the team's
name and ``assignee`` the username; ``url`` is the exception page under NOTIFWATCH_BASE_URL.

Personal data: unless ``show_personal_data``, the recipient is masked (``mask_recipient``) and
email addresses and international phone numbers inside provider error messages, exception
titles and explanations are masked too (providers quote the recipient: "'To' number
+14155550118 is not a valid mobile number").
Business references (order, ticket, invoice ids) are not personal data and stay as they are.
The audit trail is exported as recorded.

Long text: an error message, title or explanation longer than ``CELL_CHARS`` (32,000)
characters is cut there and ends with `` … [N more characters not shown]``; the raw event keeps
the whole of what was received.

Spreadsheet safety: every text cell of a CSV goes through ``csv_safe`` (OWASP CSV injection),
so ``=HYPERLINK(...)`` from a payload arrives as text. JSON lines are not neutralised: they are
not opened in spreadsheets.

Consume the iterator fully or ``close()`` it (the writers and chunk generators close it when
they stop): on PostgreSQL it iterates inside a transaction (a real server-side cursor; in
autocommit PostgreSQL would materialise the whole result first), which stays open while the
iterator is suspended, and a suspended cursor must not be left to the garbage collector.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TextIO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Aggregate, OuterRef, Subquery, TextField
from django.urls import reverse

from notifwatch.accounts.masking import mask_recipient, shown_text
from notifwatch.audit.actions import actor_label, record_audit
from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.failures.explain import explain
from notifwatch.failures.models import FailureGroup, Occurrence
from notifwatch.failures.reasons import reason_by_key
from notifwatch.ingest.models import Source

EXPORT_KINDS: tuple[str, ...] = ("notifications", "events", "exceptions", "audit")
FORMATS: tuple[str, ...] = ("csv", "jsonl")
CHUNK_SIZE = 2000
# Free-text cells (error messages, titles, explanations) hold this many characters at most, then
# a note of how many were left out: under a spreadsheet's 32,767 per cell, and masking a
# megabyte-long text per row would stall an export.
CELL_CHARS = 32_000

NOTIFICATION_COLUMNS: list[str] = [
    "source",
    "notification_key",
    "channel",
    "purpose",
    "customer_id",
    "recipient",
    "refs",
    "final_status",
    "reason_category",
    "readable_reason",
    "fix_owner",
    "permanent",
    "counts_as_failure",
    "attempts",
    "duplicate_sends",
    "identity_problem",
    "first_event_at",
    "settled_at",
    "exception_ids",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "suggested_action",
    "last_event_at",
]
EVENT_COLUMNS: list[str] = [
    "source",
    "notification_key",
    "event_id",
    "event_type",
    "occurred_at",
    "received_at",
    "attempt",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "reason_category",
    "permanent",
    "duplicate_count",
]
EXCEPTION_COLUMNS: list[str] = [
    "exception_id",
    "kind",
    "status",
    "title",
    "readable_reason",
    "suggested_action",
    "fix_owner",
    "source",
    "channel",
    "purpose",
    "reason_category",
    "team",
    "assignee",
    "customers_affected",
    "customers_reached_anyway",
    "customers_not_reached",
    "occurrences",
    "first_seen",
    "last_seen",
    "resolved_at",
    "snoozed_until",
    "merged_into",
    "url",
]
AUDIT_COLUMNS: list[str] = [
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "old",
    "new",
    "detail",
]
COLUMNS: dict[str, list[str]] = {
    "notifications": NOTIFICATION_COLUMNS,
    "events": EVENT_COLUMNS,
    "exceptions": EXCEPTION_COLUMNS,
    "audit": AUDIT_COLUMNS,
}

# What the audit trail names the target of an export that is not about one source.
EXPORT_TARGET_TYPE = "export"


class ExportError(ValueError):
    """A request for an export that cannot be made (unknown kind, source or date)."""


class UnknownSource(ExportError):
    pass


@dataclass(frozen=True)
class Json:
    """A cell holding a JSON value: compact JSON text in CSV, the value itself in JSON lines."""

    value: Any


# --- rows ----------------------------------------------------------------------------------


def rows(
    kind: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source_slug: str | None = None,
    show_personal_data: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[list[str], Iterator[list]]:
    """The header of `kind` and a lazy iterator over its rows (see the module docstring)."""
    if kind not in COLUMNS:
        raise ExportError(f"unknown export {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
    since, until = as_utc(since), as_utc(until)
    source_id = None
    if source_slug:
        source_id = Source.objects.filter(slug=source_slug).values_list("pk", flat=True).first()
        if source_id is None:
            raise UnknownSource(f"no source {source_slug!r}")
    if kind == "notifications":
        queryset = notification_rows(since, until, source_id)
        convert = notification_row_converter(show_personal_data)
    elif kind == "events":
        queryset = event_rows(since, until, source_id)
        convert = event_row_converter(show_personal_data)
    elif kind == "exceptions":
        queryset = exception_rows(since, until, source_id)
        convert = exception_row_converter(show_personal_data)
    else:
        queryset = audit_rows(since, until, source_id)
        convert = audit_row
    return list(COLUMNS[kind]), stream(queryset, convert, chunk_size)


def rows_of(
    kind: str, queryset, *, show_personal_data: bool = False, chunk_size: int = CHUNK_SIZE
) -> tuple[list[str], Iterator[list]]:
    """The same export over a queryset a page has already filtered (exactly what it shows)."""
    if kind == "notifications":
        values, convert = (
            notification_values(queryset),
            notification_row_converter(show_personal_data),
        )
    elif kind == "events":
        values, convert = event_values(queryset), event_row_converter(show_personal_data)
    elif kind == "exceptions":
        values, convert = exception_values(queryset), exception_row_converter(show_personal_data)
    elif kind == "audit":
        values, convert = audit_values(queryset), audit_row
    else:
        raise ExportError(f"unknown export {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
    return list(COLUMNS[kind]), stream(values, convert, chunk_size)


def stream(queryset, convert, chunk_size: int) -> Iterator[list]:
    # PostgreSQL only gives a true server-side cursor inside a transaction. SQLite streams
    # without one, and there an atomic block would take the write lock (IMMEDIATE mode).
    in_transaction = (
        transaction.atomic() if connection.vendor == "postgresql" else contextlib.nullcontext()
    )
    with in_transaction:
        iterator = queryset.iterator(chunk_size=chunk_size)
        try:
            for values in iterator:
                yield convert(values)
        finally:
            # Close the cursor before the transaction ends, also when the caller stops early.
            iterator.close()


def time_filter(queryset, field: str, since: datetime | None, until: datetime | None):
    if since is not None:
        queryset = queryset.filter(**{f"{field}__gte": since})
    if until is not None:
        queryset = queryset.filter(**{f"{field}__lt": until})
    return queryset


def notification_rows(since, until, source_id):
    queryset = Notification.objects.all()
    if source_id is not None:
        queryset = queryset.filter(source_id=source_id)
    return notification_values(time_filter(queryset, "last_event_at", since, until))


def notification_values(queryset):
    # (last_event_at, id) is indexed: rows come in index order, no sort before the first row.
    # The exception ids come with each row (an index lookup per row on the occurrences'
    # notification id) rather than from a query per row or per batch: one select, still lazy.
    return (
        queryset.order_by("last_event_at", "id")
        .annotate(exception_ids=exception_ids_of(OuterRef("pk")))
        .values_list(
            "source__slug",
            "notification_key",
            "channel",
            "purpose",
            "customer_id",
            "recipient",
            "refs",
            "final_status",
            "reason_category",
            "reason_key",
            "fix_owner",
            "permanent",
            "counts_as_failure",
            "attempts",
            "duplicate_sends",
            "identity_problem",
            "first_event_at",
            "settled_at",
            "exception_ids",
            "provider",
            "provider_message_id",
            "error_code",
            "error_message",
            "last_event_at",
        )
    )


class JoinedIds(Aggregate):
    """Ids as one text, "3,17": GROUP_CONCAT on SQLite, string_agg on PostgreSQL."""

    function = "GROUP_CONCAT"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            function="STRING_AGG",
            template="%(function)s((%(expressions)s)::text, ',')",
            **extra_context,
        )


def exception_ids_of(notification_id) -> Subquery:
    """The ids of the exceptions with an occurrence of that notification, joined (or null)."""
    return Subquery(
        Occurrence.objects.filter(notification_id=notification_id)
        .order_by()
        .values("notification_id")
        .annotate(ids=JoinedIds("group_id"))
        .values("ids")
    )


def id_list(joined: str | None) -> list[int]:
    return sorted(int(pk) for pk in joined.split(",")) if joined else []


def notification_row_converter(show_personal_data: bool):
    def convert(values: tuple) -> list:
        (
            source,
            key,
            channel,
            purpose,
            customer_id,
            recipient,
            refs,
            final_status,
            category,
            reason_key,
            fix_owner,
            permanent,
            counts_as_failure,
            attempts,
            duplicate_sends,
            identity_problem,
            first_event_at,
            settled_at,
            exception_ids,
            provider,
            provider_message_id,
            error_code,
            error_message,
            last_event_at,
        ) = values
        reason = readable(reason_key, category)
        if not show_personal_data:
            recipient = mask_recipient(recipient)
            error_message = shown_text(error_message, personal=False, limit=CELL_CHARS)
        elif len(error_message) > CELL_CHARS:
            error_message = shown_text(error_message, personal=True, limit=CELL_CHARS)
        return [
            source,
            key,
            channel,
            purpose,
            customer_id,
            recipient,
            Json(refs or {}),
            final_status,
            category,
            reason.sentence if reason else "",
            fix_owner,
            permanent,
            counts_as_failure,
            attempts,
            duplicate_sends,
            identity_problem,
            first_event_at,
            settled_at,
            id_list(exception_ids),
            provider,
            provider_message_id,
            error_code,
            error_message,
            reason.action if reason else "",
            last_event_at,
        ]

    return convert


def readable(reason_key: str, category: str):
    """The catalog's reason; its category's generic reason if the catalog dropped the key."""
    if not (reason_key or category):
        return None
    return reason_by_key(reason_key) or (
        reason_by_key(f"category:{category}") if category else None
    )


def event_rows(since, until, source_id):
    queryset = DeliveryEvent.objects.all()
    if source_id is not None:
        queryset = queryset.filter(source_id=source_id)
    return event_values(time_filter(queryset, "occurred_at", since, until))


def event_values(queryset):
    return queryset.order_by("occurred_at", "id").values_list(
        "source__slug",
        "notification__notification_key",
        "event_id",
        "event_type",
        "occurred_at",
        "received_at",
        "attempt",
        "provider",
        "provider_message_id",
        "error_code",
        "error_message",
        "reason_category",
        "permanent",
        "duplicate_count",
    )


def event_row_converter(show_personal_data: bool):
    def convert(values: tuple) -> list:
        row = list(values)
        if not show_personal_data or len(row[10]) > CELL_CHARS:
            row[10] = shown_text(row[10], personal=show_personal_data, limit=CELL_CHARS)
        return row

    return convert


def exception_rows(since, until, source_id):
    queryset = FailureGroup.objects.all()
    if source_id is not None:
        queryset = queryset.filter(source_id=source_id)
    # An exception spans time: keep those that occurred in the window, not only those that
    # ended in it (one still growing after `until` was there during the window too).
    if since is not None:
        queryset = queryset.filter(last_seen__gte=since)
    if until is not None:
        queryset = queryset.filter(first_seen__lt=until)
    return exception_values(queryset)


def exception_values(queryset):
    # Model instances, not tuples: the explanation reads the kind's facts and the source.
    # Exceptions are few next to notifications, so the slower rows do not matter.
    return queryset.select_related("source", "team", "assignee").order_by("last_seen", "id")


def exception_row_converter(show_personal_data: bool):
    def show(text: str) -> str:
        return shown_text(text, personal=show_personal_data, limit=CELL_CHARS)

    base_url = settings.NOTIFWATCH_BASE_URL

    def convert(group: FailureGroup) -> list:
        # Titles and explanations are written by detection rules and may quote a recipient.
        explanation = explain(group, show_personal_data)
        reason = reason_by_key(group.reason_key)
        return [
            group.pk,
            group.kind,
            group.status,
            show(group.title),
            show(explanation.sentence),
            show(explanation.action),
            group.fix_owner or (reason.fix_owner if reason else ""),
            group.source.slug if group.source else "",
            group.channel,
            group.purpose,
            group.reason_category,
            group.team.name if group.team else "",
            group.assignee.get_username() if group.assignee else "",
            group.customers_affected,
            group.customers_reached_anyway,
            group.customers_not_reached,
            group.occurrences,
            group.first_seen,
            group.last_seen,
            group.resolved_at,
            group.snoozed_until,
            group.merged_into_id,
            base_url + reverse("exception_detail", args=[group.pk]),
        ]

    return convert


def audit_rows(since, until, source_id):
    queryset = AuditEntry.objects.all()
    if source_id is not None:
        queryset = queryset.filter(target_type=Source._meta.label_lower, target_id=str(source_id))
    return audit_values(time_filter(queryset, "at", since, until))


def audit_values(queryset):
    return queryset.order_by("at", "id").values_list(
        "at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "old",
        "new",
        "detail",
    )


def audit_row(values: tuple) -> list:
    row = list(values)
    row[6], row[7] = Json(row[6]), Json(row[7])
    return row


# --- cells and writers ---------------------------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_STARTS)


def csv_safe(value: str) -> str:
    """Make a text cell inert in spreadsheets: a leading ' before = + - @ tab or CR (OWASP)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def iso_utc(value: datetime) -> str:
    if value.tzinfo is UTC:  # as the database hands them over: nothing to convert
        return value.isoformat()[:-6] + "Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# What json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True) builds on
# each call, built once: a cell per row of a million-row export.
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def compact_json(value: Any) -> str:
    return _compact_json(value)


def csv_cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value  # numbers we produce ourselves
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Json):
        return "" if value.value is None else csv_safe(compact_json(value.value))
    if isinstance(value, list | tuple):
        return csv_safe(" ".join(str(item) for item in value))
    return csv_safe(str(value))


def json_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Json):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


class _Line:
    """A file-like object that hands back what csv.writer writes, for chunked output."""

    def write(self, text: str) -> str:
        return text


def csv_chunks(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """CSV text, one line per chunk: the header first, then each row."""
    writerow = csv.writer(_Line()).writerow
    formula_first = _FORMULA_FIRST
    with closing_rows(rows):
        yield writerow(header)
        for row in rows:
            # csv_cell for every cell, its commonest cases (text, None, datetime, int, bool)
            # written out:
            # its chain of isinstance checks per cell was most of an export's time
            # (bench/export_bench.py).
            yield writerow(
                [
                    ("'" + value if value[:1] in formula_first else value)
                    if type(value) is str
                    else ""
                    if value is None
                    else iso_utc(value)
                    if type(value) is datetime
                    else value
                    if type(value) is int
                    else ("true" if value else "false")
                    if type(value) is bool
                    else csv_cell(value)
                    for value in row
                ]
            )


def jsonl_chunks(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """JSON lines, one object per row keyed by the header names."""
    with closing_rows(rows):
        for row in rows:
            record = {name: json_cell(value) for name, value in zip(header, row, strict=True)}
            yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_csv(header: list[str], rows: Iterable[list], out: TextIO) -> int:
    """Write CSV to a text stream opened with newline=""; returns the number of data rows."""
    return _write(csv_chunks(header, rows), out) - 1


def write_jsonl(header: list[str], rows: Iterable[list], out: TextIO) -> int:
    """Write JSON lines to a text stream; returns the number of rows."""
    return _write(jsonl_chunks(header, rows), out)


def _write(chunks: Iterator[str], out: TextIO) -> int:
    count = 0
    with contextlib.closing(chunks):
        for chunk in chunks:
            out.write(chunk)
            count += 1
    return count


@contextlib.contextmanager
def closing_rows(rows: Iterable[list]):
    """Close the rows when the output stops, even half-way (a write failed, a client left).

    Left to the garbage collector, a suspended PostgreSQL cursor may be closed at any moment,
    even while its connection is busy (a deadlock in psycopg): close it deterministically.
    """
    try:
        yield
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


WRITERS = {"csv": write_csv, "jsonl": write_jsonl}


# --- dates and audit -----------------------------------------------------------------------


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime.

    A date alone means midnight UTC; a date-time without an offset is read as UTC.
    """
    value = text.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ExportError(f"{text!r} is not an ISO 8601 date") from None
    return as_utc(moment)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Counted:
    """Counts the rows handed to a writer, also when writing stops half-way."""

    def __init__(self, rows: Iterator[list]):
        self.rows = rows
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> list:
        row = next(self.rows)
        self.count += 1
        return row

    def close(self) -> None:
        self.rows.close()


def record_export(
    *,
    actor,
    kind: str,
    format: str,
    filters: dict,
    rows: int,
    target=None,
    system_label: str = "system",
    **extra: Any,
) -> AuditEntry:
    """The `export.downloaded` audit entry of one export run.

    An export about one object (a source's rows, an exception's notifications) is recorded
    against it, so it shows in that object's trail; any other export against the target type
    "export" with the kind as its id, so all exports of a kind can be listed.
    """
    new = {"kind": kind, "format": format, "filters": filters, "rows": rows, **extra}
    if target is not None:
        return record_audit(
            actor=actor,
            action="export.downloaded",
            target=target,
            new=new,
            system_label=system_label,
        )
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor_label(actor) if actor is not None else system_label,
        action="export.downloaded",
        target_type=EXPORT_TARGET_TYPE,
        target_id=kind,
        target_label=f"{kind} export",
        new=new,
    )
