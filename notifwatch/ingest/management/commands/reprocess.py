from django.core.management.base import BaseCommand, CommandError

from notifwatch.ingest.actions import reprocess_quarantined, unfinished_run
from notifwatch.ingest.models import Source


class Command(BaseCommand):
    help = (
        "Run quarantined (and failed) raw events again through the source's current mapping. "
        "A run that was stopped part-way (killed) is continued where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", metavar="SLUG", help="default: every source")

    def handle(self, slugs, **options):
        sources = Source.objects.filter(slug__in=slugs) if slugs else Source.objects.all()
        missing = set(slugs) - set(sources.values_list("slug", flat=True))
        if missing:
            raise CommandError(f"no source {', '.join(sorted(missing))}")
        failed = 0
        for source in sources:
            result = reprocess_quarantined(
                source, actor_label="manage.py reprocess", run=unfinished_run(source)
            )
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
            resumed = (
                f" (continued run {result.run}, stopped after raw event #{result.resumed_after})"
                if result.resumed_after is not None
                else ""
            )
            self.stdout.write(
                f"{source.slug}: reprocessed {result.attempted} ({outcomes}): "
                f"{result.words}{resumed}"
            )
            failed += result.failed
        if failed:
            # Every other row was still run; these kept their outcome and the error.
            raise CommandError(
                f"{failed} raw event{'s' if failed != 1 else ''} failed with an error (kept on "
                "each raw event's page); the rest were reprocessed"
            )
