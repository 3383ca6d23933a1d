from django.core.management.base import BaseCommand, CommandError

from notifwatch.ingest.actions import reprocess_quarantined
from notifwatch.ingest.models import Source


class Command(BaseCommand):
    help = "Run quarantined raw events again through the source's current mapping."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", metavar="SLUG", help="default: every source")

    def handle(self, slugs, **options):
        sources = Source.objects.filter(slug__in=slugs) if slugs else Source.objects.all()
        missing = set(slugs) - set(sources.values_list("slug", flat=True))
        if missing:
            raise CommandError(f"no source {', '.join(sorted(missing))}")
        for source in sources:
            result = reprocess_quarantined(source, actor_label="manage.py reprocess")
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
            self.stdout.write(f"{source.slug}: reprocessed {result.attempted} ({outcomes})")
