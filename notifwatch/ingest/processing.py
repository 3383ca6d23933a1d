"""Interpreting stored raw events into canonical events, and recording them."""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifwatch.deliveries.recording import PendingEvent, record_events
from notifwatch.ingest.canonical import FieldProblem, canonical_events
from notifwatch.ingest.mapping import Ignored, Mapping
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.parsing import BodyProblem, parse_json_line, records_from_body
from notifwatch.ingest.providers import adapter_for


@dataclass
class Interpretation:
    pending: list[PendingEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)


def record_hash(record: Any) -> str:
    """Same content, same id: a record re-posted without an event id is recognised."""
    return hashlib.sha256(
        json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


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
    """Interpret one stored raw event, all or nothing: any unreadable item quarantines it."""
    try:
        found = interpret_raw(raw)
    except BodyProblem as problem:
        return finish(
            raw,
            Outcome.QUARANTINED,
            problems=[{"index": problem.index, "field": None, "message": problem.message}],
        )
    many = len({p.item_index for p in found.pending}) + len(found.problems) > 1
    if found.problems:
        return finish(raw, Outcome.QUARANTINED, problems=found.problems, many=many)
    with transaction.atomic():
        result = record_events(raw.source_id, found.pending)
        if found.pending and result.new == 0:
            outcome = Outcome.DUPLICATE
        elif found.pending:
            outcome = Outcome.PARSED
        else:
            outcome = Outcome.IGNORED
        reason = "; ".join(sorted(set(found.ignored)))[:500] if outcome == Outcome.IGNORED else ""
        return finish(raw, outcome, count=result.new, reason=reason)


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
    raw.problems = problems or []
    raw.reason = describe_problems(raw.problems, many) if problems else reason
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
