from django.core.management.base import BaseCommand

from notifwatch.audit.retention import prune


class Command(BaseCommand):
    help = (
        "Remove raw payloads older than NOTIFWATCH_RAW_PAYLOAD_DAYS (and audit entries older "
        "than NOTIFWATCH_AUDIT_RETENTION_DAYS when set), in chunks, and forget Mailgun "
        "signature tokens older than NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS. Runs daily in the worker."
    )

    def handle(self, **options):
        counts = prune()
        self.stdout.write(", ".join(f"{name} {count}" for name, count in counts.items()))
