"""The access matrix of the reliability suite (bench/reliability/access.py), on the test database.

Every URL pattern must have a row in its table: a new page fails here until someone decides,
role by role, who may open it.
"""

import logging

import pytest

from bench.reliability.access import (
    ACCESS_TABLE,
    ALLOWED,
    CSRF,
    ROLES,
    build_world,
    check_access,
    mismatch_lines,
    table_problems,
)


@pytest.fixture
def world(db, settings):
    # The admin site lists task results: they need the database queue, not the immediate one.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    return build_world()


@pytest.fixture(autouse=True)
def quiet_refusals():
    # Hundreds of 403/404/405 answers are the point here, not news.
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security.csrf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_it_has_a_row_for_every_url_pattern(db):
    assert table_problems() == []


def test_it_answers_every_page_as_the_table_says_for_every_role(world):
    result = check_access(world, only=lambda pattern: not pattern.key.startswith("admin"))

    assert mismatch_lines(result) == []
    assert {cell.key for cell in result.cells} >= set(ACCESS_TABLE) - {
        key for key in ACCESS_TABLE if key.startswith("admin")
    }


def test_it_keeps_the_admin_site_to_staff(world):
    # Every admin page as a signed-in viewer (not staff) and the admin; the POST without a CSRF
    # token once, as the admin (every role is asked by `python -m bench.reliability access`).
    result = check_access(
        world,
        only=lambda pattern: pattern.key.startswith("admin"),
        as_roles=("viewer", "admin"),
        csrf_roles=("admin",),
    )

    assert mismatch_lines(result) == []
    assert any(cell.role == "admin" and cell.got == ALLOWED for cell in result.cells)


def test_it_refuses_every_post_without_a_csrf_token_except_the_ingest_endpoints(world):
    result = check_access(
        world,
        only=lambda pattern: not pattern.key.startswith("admin"),
        as_roles=("reviewer",),
        csrf_roles=("reviewer",),
    )

    tokenless = [cell for cell in result.cells if cell.method == "POST no CSRF token"]
    assert tokenless and all(cell.got == CSRF for cell in tokenless)
    exempt = {cell.key for cell in result.cells} - {cell.key for cell in tokenless}
    assert exempt == {"api_events", "source_webhook"}


def test_it_reports_a_role_let_in_where_the_table_says_no(world, monkeypatch):
    # The checker must be able to fail: pretend the README said viewers may not read the queue.
    row = ACCESS_TABLE["exception_list"]
    stricter = type(row)(get={**row.get, "viewer": "403"}, post=row.post)
    monkeypatch.setitem(ACCESS_TABLE, "exception_list", stricter)

    result = check_access(
        world, only=lambda pattern: pattern.key == "exception_list", as_roles=ROLES
    )

    assert mismatch_lines(result) == ["GET /exceptions/ as viewer: expected 403, got allowed (200)"]
