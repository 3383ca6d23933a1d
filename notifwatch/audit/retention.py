"""Retention: how long raw payloads, (optionally) audit entries and webhook tokens are kept."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import DeliveryEvent
from notifwatch.ingest.models import RawEvent, UsedWebhookToken

CHUNK = 5000


def prune(now: datetime | None = None, chunk: int = CHUNK) -> dict[str, int]:
    """Remove what retention says is too old, in chunks (short transactions, no long locks)."""
    now = now or timezone.now()
    counts = {"raw_payloads": 0, "event_payloads": 0, "audit_entries": 0, "webhook_tokens": 0}
    payload_cutoff = now - timedelta(days=settings.NOTIFWATCH_RAW_PAYLOAD_DAYS)
    counts["raw_payloads"] = in_chunks(
        RawEvent.objects.filter(received_at__lt=payload_cutoff, payload_pruned_at__isnull=True),
        lambda ids: RawEvent.objects.filter(pk__in=ids).update(
            body=b"", headers={}, payload_pruned_at=now
        ),
        chunk,
    )
    counts["event_payloads"] = in_chunks(
        DeliveryEvent.objects.filter(received_at__lt=payload_cutoff, payload__isnull=False),
        lambda ids: DeliveryEvent.objects.filter(pk__in=ids).update(payload=None),
        chunk,
    )
    if settings.NOTIFWATCH_AUDIT_RETENTION_DAYS:
        audit_cutoff = now - timedelta(days=settings.NOTIFWATCH_AUDIT_RETENTION_DAYS)
        counts["audit_entries"] = in_chunks(
            AuditEntry.objects.filter(at__lt=audit_cutoff),
            # The one allowed deletion of audit entries (the model and database refuse others).
            lambda ids: AuditEntry.objects.filter(pk__in=ids).prune(),
            chunk,
        )
    # Mailgun tokens are remembered only while their signature's timestamp is accepted.
    token_cutoff = now - timedelta(seconds=settings.NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS)
    counts["webhook_tokens"] = in_chunks(
        UsedWebhookToken.objects.filter(signed_at__lt=token_cutoff),
        lambda ids: UsedWebhookToken.objects.filter(pk__in=ids).delete()[0],
        chunk,
    )
    if any(counts.values()):
        with transaction.atomic():
            AuditEntry.objects.create(
                actor=None,
                actor_label="system: retention",
                action="retention.pruned",
                target_type="retention",
                target_id="",
                new={
                    **counts,
                    "raw_payload_days": settings.NOTIFWATCH_RAW_PAYLOAD_DAYS,
                    "audit_retention_days": settings.NOTIFWATCH_AUDIT_RETENTION_DAYS,
                },
            )
    return counts


def in_chunks(queryset, apply, chunk: int) -> int:
    total = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return total
        with transaction.atomic():
            total += apply(ids)
