"""Importing JSON-lines and CSV files: every line accounted for, re-imports add nothing."""

import csv
import gzip
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.db import IntegrityError, transaction
from django.utils import timezone

from notifwatch.deliveries.bulk import allocate_ids, db_datetime, db_json, insert_rows
from notifwatch.deliveries.recording import PendingEvent, record_events
from notifwatch.ingest.canonical import FieldProblem
from notifwatch.ingest.mapping import Ignored, Mapping
from notifwatch.ingest.models import Outcome, RawEvent, Source, SourceKind, Transport
from notifwatch.ingest.parsing import (
    BOM,
    BodyProblem,
    content_hash,
    parse_json_line,
    records_from_body,
)

BATCH_SIZE = 2000
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class LineProblem:
    line: int
    reason: str


@dataclass
class ImportSummary:
    name: str
    read: int = 0
    blank: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    quarantined: list[LineProblem] = field(default_factory=list)

    def merge(self, other: "ImportSummary") -> None:
        self.read += other.read
        self.blank += other.blank
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.quarantined.extend(other.quarantined)

    def reasons(self) -> Counter:
        return Counter(problem.reason for problem in self.quarantined)


Progress = Callable[[int], None]


def open_input(path: str) -> BinaryIO:
    """A path, or '-' for standard input; gzip is recognised by its magic bytes."""
    raw: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    peek = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if peek == GZIP_MAGIC or path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def looks_like_csv(path: str, source: Source) -> bool:
    name = path.removesuffix(".gz")
    return source.kind == SourceKind.CSV or name.endswith(".csv")


def import_path(
    source: Source, path: str, progress: Progress | None = None, batch_size: int = BATCH_SIZE
) -> ImportSummary:
    name = "stdin" if path == "-" else Path(path).name
    with open_input(path) as stream:
        if looks_like_csv(path, source):
            lines = csv_lines(stream)
        elif path.removesuffix(".gz").endswith(".json"):
            lines = json_document_items(stream)
        else:
            lines = jsonl_lines(stream)
        return import_lines(source, lines, name, progress, batch_size)


def json_document_items(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, str | None]]:
    """A .json file holds one document (an object or an array); items are numbered from 1."""
    data = stream.read()
    try:
        records = records_from_body(data)
    except BodyProblem as problem:
        yield 1, data[:65536], problem.message
        return
    for number, record in enumerate(records, start=1):
        yield number, json.dumps(record, ensure_ascii=False).encode(), None


def jsonl_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, line bytes or None, problem); the problem is set for unreadable lines."""
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        yield number, line.strip(), None


def csv_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, str | None]]:
    """CSV rows as JSON objects keyed by the header; `refs.x` columns become refs."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    header_width = None
    try:
        for row in reader:
            header_width = header_width or len(reader.fieldnames or [])
            if None in row:
                cells = [v for k, v in row.items() if k is not None] + list(row[None])
                yield (
                    reader.line_num,
                    json.dumps(cells, ensure_ascii=False).encode(),
                    (
                        f"row has {header_width + len(row[None])} fields, the header has {header_width}"
                    ),
                )
                continue
            if not any((value or "").strip() for value in row.values()):
                yield reader.line_num, b"", None
                continue
            record = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            yield reader.line_num, json.dumps(record, ensure_ascii=False).encode(), None
    except UnicodeDecodeError as exc:
        yield reader.line_num + 1, None, f"not UTF-8 text ({exc.reason})"
    except csv.Error as exc:
        yield reader.line_num, None, f"not valid CSV: {exc}"


def import_lines(
    source: Source, lines, name: str, progress: Progress | None = None, batch_size: int = BATCH_SIZE
) -> ImportSummary:
    summary = ImportSummary(name=name)
    mapping = Mapping(source.mapping)
    batch: list[tuple[int, bytes | None, str | None]] = []
    for item in lines:
        batch.append(item)
        if len(batch) >= batch_size:
            summary.merge(import_batch(source, mapping, batch, name))
            batch = []
            if progress:
                progress(summary.read + summary.blank)
    if batch:
        summary.merge(import_batch(source, mapping, batch, name))
        if progress:
            progress(summary.read + summary.blank)
    return summary


def import_batch(source: Source, mapping: Mapping, batch, name: str) -> ImportSummary:
    # Two importers racing on the same file: the loser's insert fails on the unique
    # line constraint; a retry then sees the winner's rows as duplicates.
    for attempt in range(3):
        try:
            return import_batch_once(source, mapping, batch, name)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def import_batch_once(source: Source, mapping: Mapping, batch, name: str) -> ImportSummary:
    summary = ImportSummary(name=name)
    # digest -> (line number, bytes, problem found while reading the line or None)
    candidates: dict[str, tuple[int, bytes, str | None]] = {}
    for number, line, problem in batch:
        if problem is None and not line:
            summary.blank += 1
            continue
        summary.read += 1
        line = line or b""
        digest = content_hash(line or f"{name}:{number}:{problem}".encode())
        if digest in candidates:
            summary.duplicates += 1
            continue
        candidates[digest] = (number, line, problem)
    with transaction.atomic():
        seen = set(
            RawEvent.objects.filter(
                source=source, transport=Transport.IMPORT, content_hash__in=list(candidates)
            ).values_list("content_hash", flat=True)
        )
        summary.duplicates += len(seen)
        raws: list[NewRaw] = []
        events: list = []  # (raw index, canonical event)
        for digest, (number, line, problem) in candidates.items():
            if digest in seen:
                continue
            raw = NewRaw(body=line, content_hash=digest, line_number=number)
            try:
                if problem is not None:
                    raise BodyProblem(problem)
                for event in mapping.apply(parse_json_line(line), fallback_event_id=digest):
                    events.append((len(raws), event))
            except Ignored as why:
                raw.outcome, raw.reason = Outcome.IGNORED, str(why)[:500]
                summary.ignored += 1
            except (BodyProblem, FieldProblem) as problem:
                quarantine(raw, problem)
                summary.quarantined.append(LineProblem(number, raw.reason))
            raws.append(raw)
        for index, _ in events:
            raws[index].event_count += 1
        insert_raw_events(source, name, raws)
        pending = [
            PendingEvent(event=event, raw_event_id=raws[index].pk) for index, event in events
        ]
        result = record_events(source.pk, pending)
        summary.stored += result.new
        summary.duplicates += result.duplicates
    summary.quarantined.sort(key=lambda p: p.line)
    return summary


RAW_COLUMNS = (
    "id",
    "source_id",
    "received_at",
    "transport",
    "content_type",
    "headers",
    "body",
    "content_hash",
    "import_name",
    "line_number",
    "outcome",
    "problems",
    "reason",
    "event_count",
    "processed_at",
)


@dataclass(slots=True)
class NewRaw:
    """An import line on its way into RawEvent (model instances cost too much per line)."""

    body: bytes
    content_hash: str
    line_number: int
    outcome: str = Outcome.PARSED
    problems: list | None = None
    reason: str = ""
    event_count: int = 0
    pk: int | None = None


def insert_raw_events(source: Source, name: str, raws: list[NewRaw]) -> None:
    """COPY the batch's raw lines (bulk_create would be the slowest step of an import)."""
    now = db_datetime(timezone.now())
    for raw, pk in zip(raws, allocate_ids(RawEvent, len(raws)), strict=True):
        raw.pk = pk
    insert_rows(
        RawEvent,
        RAW_COLUMNS,
        [
            (
                raw.pk,
                source.pk,
                now,
                Transport.IMPORT,
                "",
                "{}",
                raw.body,
                raw.content_hash,
                name[:255],
                raw.line_number,
                raw.outcome,
                db_json(raw.problems or []),
                raw.reason,
                raw.event_count,
                now,
            )
            for raw in raws
        ],
    )


def quarantine(raw: NewRaw, problem: Exception) -> None:
    if isinstance(problem, FieldProblem):
        entry = {"index": None, "field": problem.field, "message": problem.message}
        raw.reason = f"{problem.field}: {problem.message}"
    else:
        entry = {"index": None, "field": None, "message": str(problem)}
        raw.reason = str(problem)
    raw.outcome, raw.problems, raw.event_count = Outcome.QUARANTINED, [entry], 0
    raw.reason = raw.reason[:500]
