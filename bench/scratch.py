"""What every benchmark shares: its own scratch database, a configured Django, fast seeding."""

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from urllib.parse import urlsplit, urlunsplit


def scratch_database(url: str | None, name: str, *, reuse: bool = False) -> str:
    """A database of the benchmark's own (never real data): `name` on PostgreSQL, else a
    temporary SQLite file. With `reuse`, an existing PostgreSQL one is kept (skip seeding)."""
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{tempfile.mkdtemp()}/{name}.sqlite3"
    import psycopg

    if not reuse:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def setup_django(url: str) -> None:
    """Production settings over plain HTTP on localhost, static files without collectstatic."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnop")
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("SECURE_COOKIES", "0")
    os.environ.setdefault("STATIC_FROM_FINDERS", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "notifwatch.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def copy_rows(model, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """Write rows the way ingest does (deliveries.bulk.insert_rows: COPY on PostgreSQL,
    executemany on SQLite), 50,000 at a time, then move the id sequence past them; return how
    many."""
    from django.db import connection

    from notifwatch.deliveries.bulk import db_datetime, insert_rows, is_postgresql

    written = 0
    rows = iter(rows)
    while batch := list(islice(rows, 50_000)):
        if not is_postgresql():
            batch = [
                tuple(db_datetime(v) if isinstance(v, datetime) else v for v in r) for r in batch
            ]
        insert_rows(model, columns, batch)
        written += len(batch)
    if is_postgresql():
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'(SELECT MAX(id) FROM "{table}"))'
            )
    return written
