import sys
import time

from django.core.management.base import BaseCommand, CommandError

from notifwatch.audit.actions import record_audit
from notifwatch.ingest.importer import ImportSummary, import_path
from notifwatch.ingest.models import Source

SHOWN_PROBLEMS = 50


class Command(BaseCommand):
    help = "Import JSON-lines or CSV files ('-' for standard input, .gz read as gzip)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--batch-size", type=int, default=2000)

    def handle(self, slug, paths, batch_size, **options):
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            raise CommandError(f"no source {slug!r}; create it with add_source first")
        total = ImportSummary(name="all")
        for path in paths:
            started = time.monotonic()
            progress = self.progress_printer(path, started) if sys.stderr.isatty() else None
            try:
                summary = import_path(source, path, progress=progress, batch_size=batch_size)
            except FileNotFoundError as exc:
                raise CommandError(f"{path}: no such file") from exc
            except OSError as exc:
                raise CommandError(f"{path}: {exc}") from exc
            if progress:
                sys.stderr.write("\r\033[K")
            self.report(summary, time.monotonic() - started)
            total.merge(summary)
            record_audit(
                actor=None,
                action="source.imported",
                target=source,
                new={
                    "file": summary.name,
                    "read": summary.read,
                    "stored": summary.stored,
                    "duplicates": summary.duplicates,
                    "quarantined": len(summary.quarantined),
                },
                system_label="manage.py import_events",
            )
        if len(paths) > 1:
            self.report(total, None)

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
        for problem in summary.quarantined[:SHOWN_PROBLEMS]:
            write(f"  line {problem.line}: {problem.reason}")
        if len(summary.quarantined) > SHOWN_PROBLEMS:
            write(f"  ... and {len(summary.quarantined) - SHOWN_PROBLEMS} more; by reason:")
            for reason, count in summary.reasons().most_common(10):
                write(f"  {count:>7} × {reason}")
