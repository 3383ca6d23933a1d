from django.conf import settings
from django.db import connections, models, transaction

# Set, for one transaction only, by retention pruning: the database's triggers (migration 0002)
# let a DELETE of audit entries through only while it is on.
PRUNE_SETTING = "notifwatch.audit_prune"


class AppendOnlyError(Exception):
    """An audit entry was about to be changed or deleted: the trail is append-only."""


class AuditEntryQuerySet(models.QuerySet):
    """Entries are added, never changed or removed: update() and delete() refuse."""

    def update(self, **kwargs):
        raise AppendOnlyError("audit entries are append-only: update() refused")

    def delete(self):
        raise AppendOnlyError("audit entries are append-only: delete() refused")

    def prune(self) -> int:
        """Delete these entries for retention: the one way entries ever go."""
        database = connections[self.db]
        with transaction.atomic(using=self.db):
            if database.vendor != "postgresql":
                return super().delete()[0]
            with database.cursor() as cursor:
                # is_local=true is SET LOCAL: the permission ends with the transaction, and is
                # switched off at once in case that transaction is a caller's and goes on.
                cursor.execute("SELECT set_config(%s, 'on', true)", [PRUNE_SETTING])
                deleted = super().delete()[0]
                cursor.execute("SELECT set_config(%s, 'off', true)", [PRUNE_SETTING])
        return deleted


class AuditEntry(models.Model):
    """Append-only record of a human or system action; never edited or deleted by the app.

    Enforced here (the queryset and the instance refuse to change or delete entries) and, on
    PostgreSQL, by triggers in the database; retention pruning (`AuditEntryQuerySet.prune`) is
    the one path that removes entries.
    """

    at = models.DateTimeField(auto_now_add=True)
    # Null actor means the system; `actor_label` then names the rule or command.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=255, blank=True)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    detail = models.TextField(blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            # The audit page and exports page through entries in time order.
            models.Index(fields=["at", "id"], name="audit_time"),
        ]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_label}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit entries are append-only: an entry cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are append-only: an entry cannot be deleted")
