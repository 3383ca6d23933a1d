"""Interpreting stored raw events into canonical events, and recording them."""

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, DataError, transaction
from django.utils import timezone

from notifwatch.deliveries.recording import EventConflict, PendingEvent, record_events
from notifwatch.ingest.canonical import FieldProblem, canonical_events
from notifwatch.ingest.mapping import Ignored, Mapping
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.parsing import BodyProblem, parse_json_line, records_from_body
from notifwatch.ingest.providers import adapter_for

logger = logging.getLogger(__name__)


@dataclass
class Interpretation:
    pending: list[PendingEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)


def record_hash(record: Any) -> str:
    """Same content, same id: a record re-posted without an event id is recognised.

    Raises FieldProblem for text no database can store (a lone surrogate, a NUL character):
    the record is quarantined whole instead of being changed or half-stored.
    """
    try:
        text = json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        # A provider's own JSON reader turned 1e400 into infinity, which no JSON column stores.
        raise FieldProblem("(record)", "holds a number too large to store") from None
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise unstorable_text(record) from None
    if ESCAPED_NUL.search(text):
        raise unstorable_text(record)
    return hashlib.sha256(data).hexdigest()


# JSON's own escape of U+0000 (an odd number of backslashes before "u0000").
ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def unstorable_text(record: Any) -> FieldProblem:
    path, value = first_unstorable(record, "")
    what = (
        "a NUL character (\\u0000)"
        if "\x00" in value
        else "a lone surrogate (half of a UTF-16 pair)"
    )
    return FieldProblem(path or "(record)", f"contains {what}, which cannot be stored as text")


def first_unstorable(value: Any, path: str) -> tuple[str, str]:
    """Where the first text with a NUL or a lone surrogate is (keys count as text too)."""
    if isinstance(value, str):
        return (path, value) if not storable(value) else ("", "")
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and not storable(key):
            return where, key
        found = first_unstorable(item, where)
        if found[0]:
            return found
    return "", ""


def storable_text(text: str) -> str:
    """A reason that quotes the sender (a field named "\\u0000") must itself be storable."""
    if storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\u0000")


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def interpret(
    mapping: Mapping, records: list[Any], raw_event_id: int | None, keep_payload: bool
) -> Interpretation:
    result = Interpretation()
    for index, record in enumerate(records):
        try:
            events = mapping.apply(record, fallback_event_id=record_hash(record))
        except Ignored as why:
            result.ignored.append(str(why))
            continue
        except FieldProblem as problem:
            result.problems.append(
                {"index": index, "field": problem.field, "message": problem.message}
            )
            continue
        result.pending.extend(
            PendingEvent(
                event=event,
                raw_event_id=raw_event_id,
                item_index=index,
                payload=record if keep_payload else None,
            )
            for event in events
        )
    return result


def describe_problems(problems: list[dict], many: bool) -> str:
    parts = []
    for problem in problems[:5]:
        where = f"item {problem['index']}: " if many and problem.get("index") is not None else ""
        name = f"{problem['field']} " if problem.get("field") else ""
        parts.append(f"{where}{name}{problem['message']}".strip())
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(parts) + more


def records_of(raw: RawEvent) -> list[Any]:
    body = bytes(raw.body)
    if raw.transport == Transport.IMPORT:
        return [parse_json_line(body)]
    return records_from_body(body)


def interpret_raw(raw: RawEvent) -> Interpretation:
    """The canonical events in a stored raw event: by its provider's adapter, or its mapping."""
    adapter = adapter_for(raw.source.kind)
    if adapter is None:
        records = records_of(raw)
        return interpret(
            Mapping(raw.source.mapping), records, raw.pk, keep_payload=len(records) > 1
        )
    parsed = adapter.parse(raw.source, raw)
    found = Interpretation(ignored=list(parsed.ignored), problems=list(parsed.problems))
    for index, record in enumerate(parsed.records):
        try:
            events = canonical_events(record.values, fallback_event_id=record_hash(record.raw))
        except FieldProblem as problem:
            found.problems.append(
                {"index": index, "field": problem.field, "message": problem.message}
            )
            continue
        found.pending.extend(
            PendingEvent(
                event=event,
                raw_event_id=raw.pk,
                item_index=index,
                payload=record.raw,
                join_by_message_id=True,
            )
            for event in events
        )
    return found


def process_raw_event(raw: RawEvent) -> RawEvent:
    """Interpret one stored raw event, all or nothing: any unreadable item quarantines it.

    Whatever the sender put in the body ends as an outcome with a readable reason; only a
    crash of our own or a database going away leaves the row `received` for the worker's retry.
    """
    try:
        found = interpret_raw(raw)
    except BodyProblem as problem:
        return quarantine(raw, problem.index, None, problem.message)
    except DatabaseError:
        raise
    except RecursionError:
        return quarantine(raw, None, None, "nested too deeply to be read")
    except Exception as exc:
        # An adapter meeting a shape it does not know (or a value out of every range) is
        # a property of this body: it is kept and explained, and reprocessing retries it.
        logger.warning("raw event %s could not be read", raw.pk, exc_info=True)
        return quarantine(raw, None, None, f"could not be read: {unreadable_reason(exc)}")
    many = len({p.item_index for p in found.pending}) + len(found.problems) > 1
    if found.problems:
        return finish(raw, Outcome.QUARANTINED, problems=found.problems, many=many)
    try:
        # The events and the raw row's outcome commit together: a crash in between would
        # otherwise leave recorded events under a row that still says `received`.
        with transaction.atomic():
            result = record_events(raw.source_id, found.pending)
            if found.pending and result.new == 0:
                outcome = Outcome.DUPLICATE
            elif found.pending:
                outcome = Outcome.PARSED
            else:
                outcome = Outcome.IGNORED
            ignored = "; ".join(sorted(set(found.ignored)))[:500]
            reason = ignored if outcome == Outcome.IGNORED else ""
            return finish(raw, outcome, count=result.new, reason=reason)
    except EventConflict as conflict:
        index = conflict.item.item_index if many else None
        return quarantine(raw, index, conflict.field, conflict.message)
    except DataError as exc:
        # A value the database refuses (out of its range) is the body's, not an outage.
        return quarantine(raw, None, None, f"a value could not be stored: {first_line(exc)}")


def quarantine(raw: RawEvent, index: int | None, field_name: str | None, message: str) -> RawEvent:
    return finish(
        raw,
        Outcome.QUARANTINED,
        problems=[{"index": index, "field": field_name, "message": message[:500]}],
        many=index is not None,
    )


def unreadable_reason(exc: Exception) -> str:
    """Plain words first, the exception's own text after it for whoever fixes the adapter."""
    if isinstance(exc, (OverflowError, OSError)):
        words = "a number or timestamp is out of range"
    elif isinstance(exc, KeyError):
        words = f"the field {first_line(exc)} is missing"
    elif isinstance(exc, (TypeError, AttributeError, IndexError)):
        words = "a field does not have the shape the provider documents"
    else:
        words = first_line(exc) or "unexpected content"
    return f"{words} ({type(exc).__name__}: {first_line(exc)})" if first_line(exc) else words


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


MAX_PROBLEM_CHARS = 500
MAX_PROBLEMS_KEPT = 100
MAX_REASON_CHARS = 3000


def finish(
    raw: RawEvent,
    outcome: str,
    *,
    problems: list[dict] | None = None,
    many: bool = False,
    count: int = 0,
    reason: str = "",
) -> RawEvent:
    raw.outcome = outcome
    # What a sender wrote can be a megabyte; each stored message is cut, and a batch of a
    # thousand bad items keeps the first hundred (the reason says how many there were).
    problems = [
        {
            **p,
            "field": storable_text(p["field"]) if p.get("field") else p.get("field"),
            "message": storable_text(str(p.get("message", ""))[:MAX_PROBLEM_CHARS]),
        }
        for p in problems or []
    ]
    reason = storable_text(reason[:MAX_REASON_CHARS])
    raw.reason = describe_problems(problems, many) if problems else reason
    raw.problems = problems[:MAX_PROBLEMS_KEPT]
    raw.event_count = count
    raw.processed_at = timezone.now()
    raw.save(update_fields=["outcome", "problems", "reason", "event_count", "processed_at"])
    return raw


def store_raw(
    source: Source,
    transport: str,
    body: bytes,
    *,
    content_type: str = "",
    headers: dict | None = None,
    outcome: str = Outcome.RECEIVED,
    reason: str = "",
) -> RawEvent:
    """Durably store what arrived (autocommit) before anything interprets it."""
    return RawEvent.objects.create(
        source=source,
        received_at=timezone.now(),
        transport=transport,
        content_type=content_type[:200],
        headers=headers or {},
        body=body,
        content_hash=hashlib.sha256(body).hexdigest(),
        outcome=outcome,
        reason=reason,
    )
