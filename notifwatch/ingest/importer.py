"""Importing JSON-lines and CSV files: every readable line accounted for, re-imports add nothing.

One bad line never sinks a file: whatever reading or storing it raises, the line is kept as a
quarantined raw event with its line number and reason, and the lines around it are imported.
A cut or damaged gzip archive yields every line before the break and is reported as broken.
"""

import csv
import io
import json
import re
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from notifwatch.deliveries.bulk import allocate_ids, db_datetime, db_json, insert_rows
from notifwatch.deliveries.recording import EventConflict, PendingEvent, record_events
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
from notifwatch.ingest.processing import first_unstorable, unstorable_text

BATCH_SIZE = 2000
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads the gzip header and checks the CRC itself
READ_CHUNK = 64 * 1024
MAX_INFLATE = 1024 * 1024  # decompressed bytes per step: a gzip bomb cannot fill memory
SALVAGE_STEP = 256
# What reading one line may raise besides the readable problems (a parser's RecursionError,
# an OverflowError from a date, a bug of ours): the line is quarantined with it, never the file.
LINE_ERRORS = (ValueError, TypeError, LookupError, ArithmeticError, RecursionError, OSError)
# What storing a batch may raise because of one line's content (PostgreSQL refusing NUL or a
# lone surrogate, infinity in a JSON column); connection and race errors are not among them.
STORAGE_ERRORS = (DataError, ValueError, ArithmeticError, RecursionError)
# A lone surrogate or a NUL can only reach a parsed line through a JSON escape like these.
UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")

Line = tuple[int, bytes | None, str | None]  # (line number, bytes, problem found reading it)


@dataclass
class LineProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class FileProblem:
    """The file itself broke (a cut or damaged archive); comes after its last readable line."""

    message: str


@dataclass
class ImportSummary:
    name: str
    read: int = 0
    blank: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    quarantined: list[LineProblem] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)

    def merge(self, other: "ImportSummary") -> None:
        self.read += other.read
        self.blank += other.blank
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.quarantined.extend(other.quarantined)
        self.file_problems.extend(other.file_problems)

    def reasons(self) -> Counter:
        return Counter(problem.reason for problem in self.quarantined)

    @property
    def anything_bad(self) -> bool:
        return bool(self.quarantined or self.file_problems)


Progress = Callable[[int], None]


class GzipStream(io.RawIOBase):
    """gzip inflated step by step, so a cut or damaged archive still yields every byte before
    the break (GzipFile raises instead and drops what it had buffered) and says what broke."""

    def __init__(self, compressed: BinaryIO):
        self.compressed = compressed
        self.inflater = zlib.decompressobj(wbits=GZIP_WBITS)
        self.in_member = False
        self.carry = b""  # bytes after a member's end: the next member, or zero padding
        self.pending = memoryview(b"")
        self.ended = False
        self.problem = ""  # "truncated" or "damaged" once the archive broke
        self.detail = ""
        self.last_byte = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and not self.ended:
            self.pending = memoryview(self.inflate())
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        if count:
            self.last_byte = bytes(buffer[count - 1 : count])
        return count

    def inflate(self) -> bytes:
        if self.inflater.unconsumed_tail:
            data = self.inflater.unconsumed_tail
        elif self.carry:
            data, self.carry = self.carry, b""
        else:
            data = self.compressed.read(READ_CHUNK)
            if not data:
                self.ended = True
                if self.in_member:
                    self.problem = "truncated"
                return b""
        if not self.in_member:
            data = data.lstrip(b"\x00")
            if not data:
                return b""
            self.in_member = True
        before = self.inflater.copy()
        try:
            inflated = self.inflater.decompress(data, MAX_INFLATE)
        except zlib.error as exc:
            self.ended, self.problem, self.detail = True, "damaged", str(exc)
            return salvage(before, data)
        if self.inflater.eof:
            # Concatenated members are one file (`cat a.gz b.gz`, or a log appended to).
            self.carry = self.inflater.unused_data
            self.inflater = zlib.decompressobj(wbits=GZIP_WBITS)
            self.in_member = False
        return inflated

    @property
    def ended_mid_line(self) -> bool:
        return self.last_byte not in (b"\n", b"\r")

    def break_message(self, last_line: int) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"the gzip file is {self.problem} after line {last_line}{detail}"

    def close(self) -> None:
        if not self.closed:
            self.compressed.close()
        super().close()


def salvage(inflater, data: bytes) -> bytes:
    """What inflates before the damage: a failing call returns nothing of what it inflated, so
    the chunk is fed again a little at a time."""
    inflated = []
    for start in range(0, len(data), SALVAGE_STEP):
        try:
            inflated.append(inflater.decompress(data[start : start + SALVAGE_STEP]))
        except zlib.error:
            break
    return b"".join(inflated)


def open_input(path: str) -> BinaryIO:
    """A path, or '-' for standard input; gzip is recognised by its magic bytes."""
    raw: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    peek = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if peek == GZIP_MAGIC or path.endswith(".gz"):
        return io.BufferedReader(GzipStream(raw), buffer_size=READ_CHUNK)  # type: ignore[return-value]
    return raw


def broken_archive(stream: BinaryIO) -> GzipStream | None:
    """The gzip archive behind a read stream, when it broke before its end."""
    archive = getattr(stream, "raw", None)
    return archive if isinstance(archive, GzipStream) and archive.problem else None


def escape_unstorable(text: str) -> str:
    """Text every database stores: lone surrogates and NUL written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def looks_like_csv(path: str, source: Source) -> bool:
    name = path.removesuffix(".gz")
    return source.kind == SourceKind.CSV or name.endswith(".csv")


def import_path(
    source: Source, path: str, progress: Progress | None = None, batch_size: int = BATCH_SIZE
) -> ImportSummary:
    name = "stdin" if path == "-" else escape_unstorable(Path(path).name)
    with open_input(path) as stream:
        if looks_like_csv(path, source):
            lines = csv_lines(stream)
        elif path.removesuffix(".gz").endswith(".json"):
            lines = json_document_items(stream)
        else:
            lines = jsonl_lines(stream)
        return import_lines(source, lines, name, progress, batch_size)


def json_document_items(stream: BinaryIO) -> Iterator[Line | FileProblem]:
    """A .json file holds one document (an object or an array); items are numbered from 1."""
    data = stream.read()
    try:
        records = records_from_body(data)
    except BodyProblem as problem:
        yield 1, data[:65536], problem.message
        records = []
    except LINE_ERRORS as error:
        yield 1, data[:65536], unreadable(error)
        records = []
    for number, record in enumerate(records, start=1):
        try:
            yield number, record_bytes(record), None
        except LINE_ERRORS as error:
            yield number, None, unreadable(error)
    if archive := broken_archive(stream):
        yield FileProblem(archive.break_message(data.count(b"\n")))


def record_bytes(record) -> bytes:
    """A record of a .json document as the JSON line kept for it."""
    try:
        return json.dumps(record, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # Lone surrogates stay escaped, as they were sent; reading the line quarantines it.
        return json.dumps(record).encode()


def csv_record_bytes(record) -> tuple[bytes, str | None]:
    """A CSV row as the JSON line kept for it; a problem when some of its bytes were not UTF-8."""
    try:
        return json.dumps(record, ensure_ascii=False).encode(), None
    except UnicodeEncodeError:
        # Undecodable bytes were read as lone surrogates (surrogateescape): kept escaped.
        return json.dumps(record).encode(), "not UTF-8 text"


def jsonl_lines(stream: BinaryIO) -> Iterator[Line | FileProblem]:
    """(line number, line bytes or None, problem); the problem is set for unreadable lines."""
    complete = 0
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        # Only the last line can lack its newline, and the archive has ended when it is read.
        archive = None if line.endswith(b"\n") else broken_archive(stream)
        if archive is None:
            complete = number
            yield number, line.strip(), None
        elif line.strip():
            yield number, line.strip(), f"incomplete, {archive.break_message(complete)}"
    if archive := broken_archive(stream):
        yield FileProblem(archive.break_message(complete))


def csv_lines(stream: BinaryIO) -> Iterator[Line | FileProblem]:
    """CSV rows as JSON objects keyed by the header; `refs.x` columns become refs."""
    # surrogateescape: a row with bytes that are not UTF-8 is quarantined alone, the rest read.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    held: Line | None = None
    complete = 0
    # One row held back: only the last row of a cut archive can be incomplete.
    for row in csv_rows(csv.DictReader(text)):
        if held is not None:
            complete = held[0]
            yield held
        held = row
    archive = broken_archive(stream)
    if held is not None:
        if archive and archive.ended_mid_line:
            held = (held[0], held[1], f"incomplete, {archive.break_message(complete)}")
        else:
            complete = held[0]
        yield held
    if archive:
        yield FileProblem(archive.break_message(complete))


def csv_rows(reader: csv.DictReader) -> Iterator[Line]:
    header_width = None
    while True:
        before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, f"not valid CSV: {exc}"
            if reader.line_num == before:
                return  # the reader cannot move past it: stop rather than loop
            continue
        header_width = header_width or len(reader.fieldnames or [])
        if None in row:
            cells = [v for k, v in row.items() if k is not None] + list(row[None])
            body, _ = csv_record_bytes(cells)
            width = header_width + len(row[None])
            yield reader.line_num, body, f"row has {width} fields, the header has {header_width}"
            continue
        if not any((value or "").strip() for value in row.values()):
            yield reader.line_num, b"", None
            continue
        record = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        yield reader.line_num, *csv_record_bytes(record)


def import_lines(
    source: Source,
    lines: Iterable[Line | FileProblem],
    name: str,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    summary = ImportSummary(name=name)
    mapping = Mapping(source.mapping)
    batch: list[Line] = []
    for item in lines:
        if isinstance(item, FileProblem):
            summary.file_problems.append(item.message)
            continue
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


class LineRefused(Exception):
    """Raised out of a batch's transaction, undoing it, so the batch runs again without the line."""

    def __init__(self, line: int, problem: ValueError):
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def import_batch(
    source: Source,
    mapping: Mapping,
    batch: list[Line],
    name: str,
    refused: dict[int, ValueError] | None = None,
    retry_whole: bool = True,
) -> ImportSummary:
    """Import a batch exactly once; a line that cannot be recorded is quarantined instead.

    A line named by its error (an event id conflict) is taken out and the batch run again. Any
    other storage error, or a second conflict, halves the batch until the culprit is alone, so
    finding k bad lines among n costs about k·log(n) smaller batches, never n retries of n.
    """
    refused = dict(refused or {})
    try:
        return import_batch_retrying_races(source, mapping, batch, name, refused)
    except LineRefused as refusal:
        refused[refusal.line] = refusal.problem
        if retry_whole or len(batch) == 1:
            return import_batch(source, mapping, batch, name, refused, retry_whole=False)
    except STORAGE_ERRORS as error:
        if len(batch) == 1:
            number = batch[0][0]
            if number in refused:
                raise  # even quarantined, the line cannot be stored: a bug, not bad input
            refused[number] = BodyProblem(f"could not be stored ({describe_error(error)})")
            return import_batch(source, mapping, batch, name, refused, retry_whole=False)
    half = len(batch) // 2
    summary = import_batch(source, mapping, batch[:half], name, refused)
    summary.merge(import_batch(source, mapping, batch[half:], name, refused))
    summary.quarantined.sort(key=lambda p: p.line)
    return summary


def import_batch_retrying_races(
    source: Source, mapping: Mapping, batch: list[Line], name: str, refused: dict[int, ValueError]
) -> ImportSummary:
    # Two importers racing on the same file: the loser's insert fails on the unique
    # line constraint; a retry then sees the winner's rows as duplicates.
    for attempt in range(3):
        try:
            return import_batch_once(source, mapping, batch, name, refused)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def import_batch_once(
    source: Source, mapping: Mapping, batch: list[Line], name: str, refused: dict[int, ValueError]
) -> ImportSummary:
    summary = ImportSummary(name=name)
    # digest -> (line number, bytes, problem found while reading the line or None)
    candidates: dict[str, tuple[int, bytes, str | None]] = {}
    for number, line, problem in batch:
        if problem is None and not line and number not in refused:
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
                if number in refused:
                    raise refused[number]
                if problem is not None:
                    raise BodyProblem(problem)
                record = parse_json_line(line)
                if UNSTORABLE_ESCAPE.search(line) and first_unstorable(record, "")[1]:
                    # As the events API does: quarantined whole, never changed or half-stored.
                    raise unstorable_text(record)
                for event in mapping.apply(record, fallback_event_id=digest):
                    events.append((len(raws), event))
            except Ignored as why:
                raw.outcome, raw.reason = Outcome.IGNORED, escape_unstorable(str(why))[:500]
                summary.ignored += 1
            except (BodyProblem, FieldProblem) as problem:
                quarantine(raw, problem)
                summary.quarantined.append(LineProblem(number, raw.reason))
            except LINE_ERRORS as error:
                quarantine(raw, BodyProblem(unreadable(error)))
                summary.quarantined.append(LineProblem(number, raw.reason))
            raws.append(raw)
        for index, _ in events:
            raws[index].event_count += 1
        insert_raw_events(source, name, raws)
        pending = [
            PendingEvent(event=event, raw_event_id=raws[index].pk) for index, event in events
        ]
        try:
            result = record_events(source.pk, pending)
        except EventConflict as conflict:
            line_of = {raw.pk: raw.line_number for raw in raws}
            raise LineRefused(
                line_of[conflict.item.raw_event_id], FieldProblem(conflict.field, conflict.message)
            ) from conflict
        summary.stored += result.new
        summary.duplicates += result.duplicates
    summary.quarantined.sort(key=lambda p: p.line)
    return summary


def unreadable(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply to be read"
    return f"could not be read ({describe_error(error)})"


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


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
    # Reasons quote the line's values: escaped, so a NUL or lone surrogate cannot fail the insert.
    if isinstance(problem, FieldProblem):
        message = escape_unstorable(problem.message)
        entry = {"index": None, "field": escape_unstorable(problem.field), "message": message}
        raw.reason = f"{entry['field']}: {message}"
    else:
        entry = {"index": None, "field": None, "message": escape_unstorable(str(problem))}
        raw.reason = entry["message"]
    raw.outcome, raw.problems, raw.event_count = Outcome.QUARANTINED, [entry], 0
    raw.reason = raw.reason[:500]
