"""Retention: raw payloads go after NOTIFWATCH_RAW_PAYLOAD_DAYS; outcomes and counts stay."""

import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.audit.retention import prune
from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.importer import import_path
from notifwatch.ingest.models import RawEvent, UsedWebhookToken

pytestmark = pytest.mark.django_db


def record_audit_days_ago(days: int, count: int = 1) -> None:
    """Audit entries written that long ago (entries cannot be backdated once written)."""
    then = timezone.now() - timedelta(days=days)
    with mock.patch("django.utils.timezone.now", return_value=then):
        for n in range(count):
            AuditEntry.objects.create(
                actor_label="system", action="test.old", target_type="t", target_id=str(n)
            )


def age_everything(days: int) -> None:
    old = timezone.now() - timedelta(days=days)
    RawEvent.objects.update(received_at=old)
    DeliveryEvent.objects.update(received_at=old, payload={"kept": "until pruned"})


def test_it_removes_old_payloads_in_chunks_and_keeps_outcomes(
    inhouse_source, fixture_path, settings
):
    settings.NOTIFWATCH_RAW_PAYLOAD_DAYS = 30
    path = str(fixture_path("inhouse", "05_malformed_and_edge_lines.jsonl"))
    import_path(inhouse_source, path)
    raw_count = RawEvent.objects.count()
    age_everything(days=31)

    counts = prune(chunk=2)

    assert counts["raw_payloads"] == raw_count
    assert counts["event_payloads"] == DeliveryEvent.objects.count()
    assert all(bytes(r.body) == b"" and r.payload_pruned_at for r in RawEvent.objects.all())
    assert not DeliveryEvent.objects.exclude(payload=None).exists()
    assert (
        Notification.objects.get(notification_key="tck-55120:ticket_reply:email:3").final_status
        == "delivered"
    )
    entry = AuditEntry.objects.get(action="retention.pruned")
    assert entry.new["raw_payloads"] == raw_count
    # A re-import of the pruned file is still recognised: nothing is stored twice.
    assert import_path(inhouse_source, path).stored == 0


def test_it_keeps_recent_payloads_and_audit_entries_by_default(
    inhouse_source, fixture_path, settings
):
    settings.NOTIFWATCH_RAW_PAYLOAD_DAYS = 30
    import_path(
        inhouse_source, str(fixture_path("inhouse", "01_retry_503_timeout_then_delivered.jsonl"))
    )
    record_audit_days_ago(4000)

    assert prune() == {
        "raw_payloads": 0,
        "event_payloads": 0,
        "audit_entries": 0,
        "webhook_tokens": 0,
    }
    assert AuditEntry.objects.filter(action="test.old").exists()
    assert all(bytes(r.body) for r in RawEvent.objects.all())


def test_it_deletes_audit_entries_only_past_an_admin_set_limit(inhouse_source, settings):
    settings.NOTIFWATCH_AUDIT_RETENTION_DAYS = 365
    record_audit_days_ago(400, count=3)
    recent = AuditEntry.objects.count() - 3  # source.created, written today

    out = io.StringIO()
    call_command("prune", stdout=out)

    assert "audit_entries 3" in out.getvalue()
    assert not AuditEntry.objects.filter(action="test.old").exists()
    assert AuditEntry.objects.filter(action="source.created").count() == recent
    assert json.dumps(AuditEntry.objects.get(action="retention.pruned").new)


def test_it_forgets_mailgun_tokens_once_their_timestamps_are_refused_anyway(settings):
    from notifwatch.ingest.actions import save_source

    settings.NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS = 900
    source = save_source(slug="mailgun-mail", kind="mailgun", secret="signing-key").source
    now = timezone.now()
    for name, age in (("expired", 901), ("kept", 899), ("ahead", -600)):
        UsedWebhookToken.objects.create(
            source=source, token_hash=name, signed_at=now - timedelta(seconds=age)
        )

    assert prune(now=now)["webhook_tokens"] == 1
    assert set(UsedWebhookToken.objects.values_list("token_hash", flat=True)) == {"kept", "ahead"}
