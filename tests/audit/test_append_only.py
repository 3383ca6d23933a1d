"""The audit trail is append-only: the model refuses changes, and so does the database.

Retention pruning (`AuditEntry.objects.filter(...).prune()`) is the one way entries go.
"""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from notifwatch.audit.models import AppendOnlyError, AuditEntry
from notifwatch.audit.retention import prune

pytestmark = pytest.mark.django_db

TABLE = AuditEntry._meta.db_table


def entry(action: str = "test.recorded", **fields) -> AuditEntry:
    return AuditEntry.objects.create(
        actor_label="system", action=action, target_type="t", target_id="1", **fields
    )


def raw_sql(sql: str, params: list) -> None:
    # A savepoint, so that a refused statement does not abort the test's transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_it_still_adds_entries():
    written = entry(detail="kept")
    assert AuditEntry.objects.get(pk=written.pk).detail == "kept"


def test_it_refuses_queryset_update_and_delete():
    written = entry()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.update(detail="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=written.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    written.refresh_from_db()
    assert written.detail == ""


def test_it_refuses_to_save_or_delete_an_existing_entry():
    written = entry()
    written.detail = "rewritten"
    with pytest.raises(AppendOnlyError):
        written.save()
    with pytest.raises(AppendOnlyError):
        written.delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():
        AuditEntry.objects.bulk_update([written], ["detail"])
    assert AuditEntry.objects.get(pk=written.pk).detail == ""


def test_the_database_refuses_a_raw_sql_update():
    written = entry()
    with pytest.raises(DatabaseError, match="append-only"):
        raw_sql(f"UPDATE {TABLE} SET detail = %s WHERE id = %s", ["rewritten", written.pk])
    assert AuditEntry.objects.get(pk=written.pk).detail == ""


if connection.vendor == "postgresql":
    # SQLite empties tables with DELETE when the test suite or `flush` cleans up, so there a
    # DELETE trigger would break them: the model is the guard against deletes on SQLite.

    def test_postgresql_refuses_a_raw_sql_delete():
        written = entry()
        with pytest.raises(DatabaseError, match="append-only"):
            raw_sql(f"DELETE FROM {TABLE} WHERE id = %s", [written.pk])
        assert AuditEntry.objects.filter(pk=written.pk).exists()

    def test_postgresql_pruning_leaves_no_permission_behind_in_its_callers_transaction():
        old, kept = entry("test.old"), entry("test.kept")
        with transaction.atomic():
            assert AuditEntry.objects.filter(pk=old.pk).prune() == 1
            with pytest.raises(DatabaseError, match="append-only"):
                raw_sql(f"DELETE FROM {TABLE} WHERE id = %s", [kept.pk])
        assert AuditEntry.objects.filter(pk=kept.pk).exists()


def test_retention_pruning_is_the_one_way_entries_go(settings):
    settings.NOTIFWATCH_AUDIT_RETENTION_DAYS = 30
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(days=31)):
        old = [entry("test.old") for _ in range(3)]
    kept = entry("test.recent")

    counts = prune(chunk=2)

    assert counts["audit_entries"] == 3
    assert not AuditEntry.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert AuditEntry.objects.filter(pk=kept.pk).exists()
    assert AuditEntry.objects.filter(action="retention.pruned").exists()
    # Pruning left no permission behind: the entries it kept are as protected as before.
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=kept.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"):
        raw_sql(f"UPDATE {TABLE} SET detail = %s WHERE id = %s", ["rewritten", kept.pk])
