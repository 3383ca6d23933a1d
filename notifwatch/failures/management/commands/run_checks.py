from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifwatch.failures.detection import run_checks


class Command(BaseCommand):
    help = (
        "Run every periodic detection once (delivery failures, late, duplicates, identity, "
        "mapping breaks, rejected webhooks, silence, snooze wake-ups) and print what it found."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", help="ISO 8601 moment to judge at (default: now)")

    def handle(self, now, **options):
        moment = parse_now(now) if now else timezone.now()
        started = timezone.now()
        counts = run_checks(moment)
        woken = counts.pop("woken")
        width = max(len(kind) for kind in counts)
        for kind, added in counts.items():
            self.stdout.write(f"{kind:<{width}}  {added:>6} new occurrence(s)")
        self.stdout.write(f"{'woken':<{width}}  {woken:>6} snoozed exception(s) woke up")
        seconds = (timezone.now() - started).total_seconds()
        self.stdout.write(f"Checked in {seconds:.1f}s.")


def parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--now: {value!r} is not an ISO 8601 moment") from exc
    return moment if moment.tzinfo else timezone.make_aware(moment)
