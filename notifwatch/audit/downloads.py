"""Exports downloaded from a page: streamed, and audited with the page's filter and row count."""

from collections.abc import Iterator

from django.http import HttpRequest, StreamingHttpResponse

from notifwatch.accounts.access import sees_personal_data
from notifwatch.accounts.models import Role
from notifwatch.audit.exports import Counted, csv_chunks, jsonl_chunks, record_export, rows_of

# Who may take data out of notifwatch; everyone else reads it on the pages only.
EXPORT_ROLES = (Role.ADMIN, Role.REVIEWER, Role.AUDITOR)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
# Characters per piece of a download's response (a few hundred rows).
BATCH_CHARS = 64 * 1024


def download(
    request: HttpRequest,
    kind: str,
    fmt: str,
    queryset,
    *,
    filters: dict,
    name: str,
    target=None,
) -> StreamingHttpResponse:
    """Exactly `queryset`'s rows as CSV or JSON lines, streamed; the download is audited.

    Recipients are masked unless the user may see personal data, as on the pages.
    """
    personal = sees_personal_data(request.user)
    header, rows = rows_of(kind, queryset, show_personal_data=personal)
    counted = Counted(rows)
    chunks = (csv_chunks if fmt == "csv" else jsonl_chunks)(header, counted)
    record = {
        "actor": request.user,
        "kind": kind,
        "format": fmt,
        "filters": filters,
        "target": target,
        "show_personal_data": personal,
    }
    response = StreamingHttpResponse(
        audited(chunks, counted, record), content_type=CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="notifwatch-{name}.{fmt}"'
    return response


def audited(chunks: Iterator[str], counted: Counted, record: dict) -> Iterator[str]:
    """Pass the chunks through, then record the export with the number of rows sent.

    Also when the client leaves half-way: the server closes the response, and the entry says
    how far it got (`completed` false; the rows the export had written, which may be up to one
    batch more than the client received).
    """
    completed = False
    try:
        yield from batched(chunks)
        completed = True
    finally:
        # End the export's read transaction (PostgreSQL) before writing the audit entry.
        chunks.close()
        record_export(**record, rows=counted.count, completed=completed)


def batched(chunks: Iterator[str], size: int = BATCH_CHARS) -> Iterator[str]:
    """The first chunk at once (the header: the download starts at once), then the rest joined
    into pieces of about `size` characters.

    One line per piece cost the server a write to the socket (a system call) and an encode per
    row: a third of a million-row download's time (bench/export_bench.py).
    """
    for first in chunks:
        yield first
        break
    parts: list[str] = []
    length = 0
    for chunk in chunks:
        parts.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(parts)
            parts, length = [], 0
    if parts:
        yield "".join(parts)
