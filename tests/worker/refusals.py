"""A real database error in the middle of processing, for the tests of what a crash leaves."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from notifwatch.deliveries.models import Notification

MESSAGE = "could not extend file: No space left on device"


@contextmanager
def database_refusing_new_notifications(key_prefix: str = "") -> Iterator[None]:
    """A trigger makes the database refuse new notification rows (as a full disk would), all of
    them or those whose key starts with `key_prefix`: processing raises mid-way, after the raw
    event was stored. Dropped on leaving."""
    table = Notification._meta.db_table
    when = f"WHEN (NEW.notification_key LIKE '{key_prefix}%')" if key_prefix else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse_write() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
            )
            cursor.execute(
                f'CREATE TRIGGER test_refuse_write BEFORE INSERT ON "{table}" '
                f"FOR EACH ROW {when} EXECUTE FUNCTION test_refuse_write()"
            )
        else:
            cursor.execute(
                f'CREATE TRIGGER test_refuse_write BEFORE INSERT ON "{table}" '
                f"{when} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f'DROP TRIGGER IF EXISTS test_refuse_write ON "{table}"')
                cursor.execute("DROP FUNCTION IF EXISTS test_refuse_write()")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS test_refuse_write")
