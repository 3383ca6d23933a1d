import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from notifwatch.audit.exports import (
    EXPORT_KINDS,
    FORMATS,
    WRITERS,
    Counted,
    ExportError,
    iso_utc,
    parse_when,
    record_export,
    rows,
)
from notifwatch.ingest.models import Source

SYSTEM_LABEL = "manage.py export"


class Command(BaseCommand):
    help = (
        "Stream notifications, delivery events, exceptions or the audit trail as CSV or JSON "
        "lines, to standard output or a file. Recipients (and addresses or phone numbers quoted "
        "in provider error messages) are masked unless --show-personal-data is given: you may "
        "see them, but exports get forwarded, so masked is the safe default. Every run is "
        "recorded in the audit trail (export.downloaded) with its filters and row count."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=EXPORT_KINDS)
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="csv")
        parser.add_argument(
            "--since",
            metavar="ISO",
            help="from this moment, inclusive (2025-03-14 = midnight UTC; 2025-03-14T10:00:00Z); "
            "exceptions: last seen from then",
        )
        parser.add_argument(
            "--until",
            metavar="ISO",
            help="up to this moment, exclusive; exceptions: first seen before then",
        )
        parser.add_argument(
            "--source",
            metavar="SLUG",
            help="one source's notifications, events or exceptions; for audit, entries about "
            "that source",
        )
        parser.add_argument(
            "--output",
            metavar="FILE",
            help="write to FILE (created readable by you only, replaced only once complete) "
            "instead of standard output",
        )
        parser.add_argument(
            "--show-personal-data",
            action="store_true",
            help="do not mask recipients; the export then holds personal data: handle it so",
        )

    def handle(self, kind, fmt, since, until, source, output, show_personal_data, **options):
        since_at = self.when("--since", since)
        until_at = self.when("--until", until)
        if since_at and until_at and since_at >= until_at:
            raise CommandError("--since must be earlier than --until")
        source_obj = None
        if source:
            source_obj = Source.objects.filter(slug=source).first()
            if source_obj is None:
                known = ", ".join(Source.objects.order_by("slug").values_list("slug", flat=True))
                raise CommandError(f"no source {source!r} (known: {known or 'none'})")
        to_file = bool(output) and output != "-"
        if to_file and not Path(output).resolve().parent.is_dir():
            raise CommandError(f"--output: no directory {str(Path(output).resolve().parent)!r}")
        try:
            header, data = rows(
                kind,
                since=since_at,
                until=until_at,
                source_slug=source,
                show_personal_data=show_personal_data,
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        counted = Counted(data)
        completed = False
        try:
            if to_file:
                write_file(Path(output), WRITERS[fmt], header, counted)
            else:
                WRITERS[fmt](header, counted, StdoutText(self.stdout))
            completed = True
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, but still record what left.
            if options.get("stdout") is None:
                silence_stdout()
        finally:
            # End the export's read transaction (PostgreSQL) before writing the audit entry.
            data.close()
            record_export(
                actor=None,
                kind=kind,
                format=fmt,
                filters={
                    "since": iso_utc(since_at) if since_at else None,
                    "until": iso_utc(until_at) if until_at else None,
                    "source": source or None,
                },
                rows=counted.count,
                target=source_obj,
                system_label=SYSTEM_LABEL,
                show_personal_data=show_personal_data,
                output=str(output) if to_file else "stdout",
                completed=completed,
            )
        if to_file:
            self.stderr.write(f"{counted.count} {kind} rows written to {output}")

    def when(self, option: str, value: str | None):
        if value is None:
            return None
        try:
            return parse_when(value)
        except ExportError as exc:
            raise CommandError(f"{option}: {exc} (use 2025-03-14 or 2025-03-14T10:00:00Z)") from exc


class StdoutText:
    """The command's standard output as a plain text stream (no line endings added)."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")


def write_file(path: Path, writer, header, data) -> None:
    """Write to a temporary file beside `path`, then move it into place: never half a file.

    Not for what is not a regular file (/dev/null, a named pipe): replacing it would swap the
    device itself for a file (as root, /dev/null). Those are written to directly.
    """
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer(header, data, out)
        return
    fd, temporary = tempfile.mkstemp(
        dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".part"
    )
    try:
        with open(fd, "w", encoding="utf-8", newline="") as out:
            writer(header, data, out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def silence_stdout() -> None:
    """Point the closed standard output at /dev/null so exiting does not fail flushing it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
