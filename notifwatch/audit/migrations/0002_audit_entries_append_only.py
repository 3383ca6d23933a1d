"""The audit trail is append-only in the database too, not only in the model.

PostgreSQL: a trigger refuses every UPDATE and DELETE of an audit entry, except a DELETE made
while the transaction-local setting `notifwatch.audit_prune` is on: retention pruning sets it
(SET LOCAL, through `AuditEntryQuerySet.prune`), nothing else does. TRUNCATE fires no row
trigger, so `manage.py flush` and the test suite's clean-up still work.

SQLite: UPDATE is refused by a trigger; DELETE is refused by the model only, because SQLite
has no TRUNCATE: `flush` (and the test suite after a transactional test) empties tables with
DELETE, which a trigger could not tell from any other.
"""

from django.db import migrations

FUNCTION = "audit_entry_append_only"

POSTGRESQL_FORWARD = [
    f"""
    CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND current_setting('notifwatch.audit_prune', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit entries are append-only: % of audit entry % refused',
            TG_OP, OLD.id;
    END;
    $$
    """,
    f"""
    CREATE TRIGGER {FUNCTION} BEFORE UPDATE OR DELETE ON {{table}}
        FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()
    """,
]
POSTGRESQL_REVERSE = [
    f"DROP TRIGGER IF EXISTS {FUNCTION} ON {{table}}",
    f"DROP FUNCTION IF EXISTS {FUNCTION}()",
]
SQLITE_FORWARD = [
    """
    CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON {table}
    BEGIN
        SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE refused');
    END
    """
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS audit_entry_no_update"]


def run(sql_by_vendor: dict[str, list[str]]):
    def operation(apps, schema_editor) -> None:
        table = schema_editor.quote_name(apps.get_model("audit", "AuditEntry")._meta.db_table)
        # Other databases: the model's refusal is the only guard.
        for sql in sql_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql.format(table=table), params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunPython(
            run({"postgresql": POSTGRESQL_FORWARD, "sqlite": SQLITE_FORWARD}),
            run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        )
    ]
