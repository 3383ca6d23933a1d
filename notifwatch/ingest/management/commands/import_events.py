"""manage.py import_events: exit 0 when every line was read, 3 when something was quarantined
or a file broke (everything readable still imported), 1 when a file could not be opened."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from notifwatch.audit.actions import record_audit
from notifwatch.ingest.importer import ImportSummary, import_path
from notifwatch.ingest.models import Source

SHOWN_PROBLEMS = 50
# 1 is Django's for a failed command (and 2 argparse's for bad usage); a cron job can tell
# "look at the quarantined lines" apart from "nothing was imported, fix the setup".
EXIT_BAD_INPUT = 3


class Command(BaseCommand):
    help = (
        "Import JSON-lines or CSV files ('-' for standard input, .gz read as gzip). Exit status: "
        "0 every line read, 3 some lines quarantined or a file cut short (the rest imported), "
        "1 a file could not be opened."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--batch-size", type=int, default=2000)

    def handle(self, slug, paths, batch_size, **options):
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            raise CommandError(f"no source {slug!r}; create it with add_source first")
        total = ImportSummary(name="all")
        unopened: list[str] = []
        for path in paths:
            started = time.monotonic()
            progress = self.progress_printer(path, started) if sys.stderr.isatty() else None
            try:
                summary = import_path(source, path, progress=progress, batch_size=batch_size)
            except OSError as exc:
                # The other files are still imported; this one is named at the end.
                reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
                unopened.append(f"{path}: {reason}")
                continue
            if progress:
                sys.stderr.write("\r\033[K")
            self.report(summary, time.monotonic() - started)
            total.merge(summary)
            new = {
                "file": summary.name,
                "read": summary.read,
                "stored": summary.stored,
                "duplicates": summary.duplicates,
                "quarantined": len(summary.quarantined),
            }
            if summary.file_problems:
                new["file_problems"] = summary.file_problems
            record_audit(
                actor=None,
                action="source.imported",
                target=source,
                new=new,
                system_label="manage.py import_events",
            )
        if len(paths) > 1:
            self.report(total, None)
        if unopened:
            raise CommandError("; ".join(unopened))
        if total.anything_bad:
            raise CommandError(self.bad_input_message(total), returncode=EXIT_BAD_INPUT)

    def progress_printer(self, path: str, started: float):
        def show(lines: int) -> None:
            rate = lines / max(time.monotonic() - started, 1e-6)
            sys.stderr.write(f"\r\033[K{path}: {lines:,} lines ({rate:,.0f}/s)")
            sys.stderr.flush()

        return show

    def report(self, summary: ImportSummary, seconds: float | None) -> None:
        write = self.stdout.write
        timing = f" in {seconds:.1f}s" if seconds is not None else ""
        write(
            f"{summary.name}{timing}: read {summary.read}, stored {summary.stored}, "
            f"duplicates {summary.duplicates}, ignored {summary.ignored}, "
            f"quarantined {len(summary.quarantined)}, blank {summary.blank}"
        )
        for problem in summary.file_problems:
            write(f"  {problem}")
        for problem in summary.quarantined[:SHOWN_PROBLEMS]:
            write(f"  line {problem.line}: {problem.reason}")
        if len(summary.quarantined) > SHOWN_PROBLEMS:
            write(f"  ... and {len(summary.quarantined) - SHOWN_PROBLEMS} more; by reason:")
            for reason, count in summary.reasons().most_common(10):
                write(f"  {count:>7} × {reason}")

    def bad_input_message(self, total: ImportSummary) -> str:
        parts = []
        if total.quarantined:
            count = len(total.quarantined)
            parts.append(f"{count} line{'s' if count != 1 else ''} quarantined")
        if total.file_problems:
            count = len(total.file_problems)
            parts.append(f"{count} file{'s' if count != 1 else ''} cut short or damaged")
        return f"{' and '.join(parts)}; every readable line was imported"
