"""Access matrix: every URL pattern x every role x GET/POST, against the README's table.

`python -m bench.reliability access [--sqlite | --database-url URL]` walks `notifwatch.urls` (the admin site
included), fills each path parameter with the id of a real object it creates, and asks every
page as each role: anonymous, a signed-in user without a role, then viewer, auditor, reviewer
and admin (the README's roles; the admin is also staff, as `createsuperuser` makes one). Each
pattern is asked with GET, with POST carrying a CSRF token, and with POST without one (which
must be refused with 403 unless the endpoint is csrf-exempt: the ingest endpoints, which
authenticate by token or signature). Every answer is classed (allowed, login, 401, 403, 404,
405) and compared with ACCESS_TABLE below; a URL pattern without a row there is a failure too,
so every new page needs a row. The normal suite runs the same check
(tests/pages/test_access_matrix.py).

The table is written from the README ("Roles" and "Where things are"), not from the code:
- every page needs a login; a signed-in user with no role sees nothing (403);
- viewer: read; auditor: read and export (exports and the evidence pack); reviewer: triage and
  reviews (exception actions, bulk changes, starting, deciding and finishing reviews);
- admin: everything, and alone: users, source mapping, reprocess and token rotation, the admin
  site (where audit entries, memberships and exceptions are read-only).
"""

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

ROLES = ("anonymous", "no_role", "viewer", "auditor", "reviewer", "admin")
SIGNED_IN = ROLES[1:]
READ_ROLES = ("viewer", "auditor", "reviewer", "admin")
EXPORT_ROLES = ("auditor", "reviewer", "admin")
CHANGE_ROLES = ("reviewer", "admin")

# Answer classes. "allowed": the view itself ran for this user (2xx, a redirect that is not to
# a login page, or 400 for the empty form the matrix posts): access control let the user in.
ALLOWED = "allowed"
LOGIN = "login"  # 302 to a login page, with ?next= back here
UNAUTHORIZED = "401"  # ingest endpoints: no token, no signature
FORBIDDEN = "403"
NOT_FOUND = "404"
NOT_ALLOWED = "405"
CSRF = "csrf"  # 403 from the CSRF check (POST without a token)
SERVER_ERROR = "5xx"

Expected = dict[str, str]  # role -> class
METHODS = ("GET", "POST", "POST no CSRF token")


def roles(allowed: tuple[str, ...], *, others: str = FORBIDDEN, anonymous: str = LOGIN) -> Expected:
    """`allowed` roles get in; a signed-in user without one gets `others`; anonymous `anonymous`."""
    expected = {role: (ALLOWED if role in allowed else others) for role in SIGNED_IN}
    return {"anonymous": anonymous, **expected}


def everyone(answer: str) -> Expected:
    return dict.fromkeys(ROLES, answer)


def post_only(allowed: tuple[str, ...]) -> Expected:
    """GET of a POST-only action: the role check comes first, then 405 for those let in."""
    return {
        role: (NOT_ALLOWED if answer == ALLOWED else answer)
        for role, answer in roles(allowed).items()
    }


@dataclass(frozen=True)
class Row:
    """What each role gets from one URL pattern, for GET and for POST with a CSRF token."""

    get: Expected
    post: Expected


def page(allowed: tuple[str, ...]) -> Row:
    """A page: the same for GET and POST (a read page ignores the method; a form re-renders)."""
    return Row(get=roles(allowed), post=roles(allowed))


def action(allowed: tuple[str, ...]) -> Row:
    """A POST-only action (require_POST)."""
    return Row(get=post_only(allowed), post=roles(allowed))


READ = page(READ_ROLES)
EXPORT = page(EXPORT_ROLES)
ADMIN_ONLY = page(("admin",))
# The admin site lets in staff only (the admin role's user here); it sends everyone else to its
# own login page, signed in or not.
STAFF = Row(get=roles(("admin",), others=LOGIN), post=roles(("admin",), others=LOGIN))
# Refused to the admin too (ModelAdmin permissions): 403.
STAFF_REFUSED = Row(
    get={**roles(("admin",), others=LOGIN), "admin": FORBIDDEN},
    post={**roles(("admin",), others=LOGIN), "admin": FORBIDDEN},
)
# A read-only model's page: shown to staff, a POST (a change) refused.
STAFF_VIEW_ONLY = Row(get=STAFF.get, post=STAFF_REFUSED.post)
# Pages that only answer GET.
STAFF_GET_ONLY = Row(get=STAFF.get, post={**STAFF.post, "admin": NOT_ALLOWED})

API_READ = Row(get=everyone(UNAUTHORIZED), post=everyone(NOT_ALLOWED))

# URL name (or, for an unnamed pattern, its route) -> Row. Admin-site patterns are filled in by
# admin_rows() below from the models the admin registers, with the same rules for each.
ACCESS_TABLE: dict[str, Row] = {
    # Signing in and out, health and ingest: no role involved.
    "login": Row(get=everyone(ALLOWED), post=everyone(ALLOWED)),
    # Django 5's LogoutView: POST only.
    "logout": Row(get=everyone(NOT_ALLOWED), post=everyone(ALLOWED)),
    # /healthz answers everyone alike, signed in or not (monitors call it). No worker runs
    # beside the matrix, so it says 503 ("worker: failing") to every role.
    "healthz": Row(get=everyone(SERVER_ERROR), post=everyone(NOT_ALLOWED)),
    # The matrix posts no credentials: refused whoever is signed in (sessions do not count).
    "api_events": Row(get=everyone(NOT_ALLOWED), post=everyone(UNAUTHORIZED)),
    # GET/HEAD answer providers that check the URL when it is configured.
    "source_webhook": Row(get=everyone(ALLOWED), post=everyone(UNAUTHORIZED)),
    # The read API: a personal token in the Authorization header, never the session, so every
    # role is refused 401 here (tests/api/ asks with tokens); GET only. Its OpenAPI document is
    # public: it describes the API and holds no data.
    "api_exceptions": API_READ,
    "api_exception": API_READ,
    "api_notifications": API_READ,
    "api_sources": API_READ,
    "api_openapi": Row(get=everyone(ALLOWED), post=everyone(NOT_ALLOWED)),
    # Reading: every role.
    "home": READ,
    "source_list": READ,
    "source_detail": READ,
    "raw_event_detail": READ,
    "notification_search": READ,
    "notification_detail": READ,
    "exception_list": READ,
    "exception_detail": READ,
    "review_list": READ,
    "review_detail": READ,
    "review_minutes": READ,
    "audit_list": READ,
    "preferences": READ,
    # API tokens: every role creates and revokes its own (admins anyone's).
    "api_tokens": READ,
    "api_token_revoke": action(READ_ROLES),
    # Exports and the evidence pack: admins, reviewers and auditors.
    "notification_export": EXPORT,
    "exception_export": EXPORT,
    "exception_notifications_export": EXPORT,
    "audit_export": EXPORT,
    "evidence_index": EXPORT,
    "evidence_page": EXPORT,
    "evidence_download": EXPORT,
    # Triage and reviews: reviewers and admins.
    "exception_action": action(CHANGE_ROLES),
    "exception_bulk": action(CHANGE_ROLES),
    "review_start": action(CHANGE_ROLES),
    "review_decide": action(CHANGE_ROLES),
    "review_finish": action(CHANGE_ROLES),
    "review_confirm_routing": action(CHANGE_ROLES),
    # Sources' settings and users: admins.
    "source_mapping": action(("admin",)),
    "source_reprocess": action(("admin",)),
    # GET is the confirmation page (it works without JavaScript), POST rotates.
    "source_rotate_token": ADMIN_ONLY,
    "user_list": ADMIN_ONLY,
    "user_new": ADMIN_ONLY,
    "user_edit": ADMIN_ONLY,
    # Alerts: every role manages its own subscriptions; only admins the teams'. The matrix's
    # subscription is a team's, so only the admin gets in (another user's own is a 404).
    "alerts": READ,
    "alerts_team": ADMIN_ONLY,
    "alert_subscription": ADMIN_ONLY,
    # The admin site's own pages.
    "admin:login": Row(get=everyone(ALLOWED), post=everyone(ALLOWED)),
    # Logging out of the admin site: POST only; anyone else is sent to its index (not refused:
    # there is nothing to protect in ending a session).
    "admin:logout": Row(
        get={**everyone(ALLOWED), "admin": NOT_ALLOWED},
        post=everyone(ALLOWED),
    ),
    "admin:index": STAFF,
    "admin:app_list": STAFF,
    "admin:password_change": STAFF,
    "admin:password_change_done": STAFF_GET_ONLY,
    "admin:jsi18n": STAFF_GET_ONLY,
    # Asked without a field to complete, the autocomplete endpoint refuses (403) even staff.
    "admin:autocomplete": Row(get=STAFF_REFUSED.get, post=STAFF_GET_ONLY.post),
    # "View on site" of an object without a public page (none has one): 404 for staff.
    "admin:view_on_site": Row(
        get={**STAFF.get, "admin": NOT_FOUND}, post={**STAFF.post, "admin": NOT_FOUND}
    ),
    # An unknown admin address: staff get 404, everyone else the login page (it says nothing
    # about which models exist).
    "admin/(?P<url>.*)$": Row(
        get={**roles(("admin",), others=LOGIN), "admin": NOT_FOUND},
        post={**roles(("admin",), others=LOGIN), "admin": NOT_FOUND},
    ),
}

# README: "audit entries, memberships and exceptions are read-only there (they change through
# the app, which audits them); teams, owner rules and timing windows are edited there". Every
# other notifwatch model is read-only too (what arrived, what was counted, sources changed by
# their own audited actions); Django's users and groups are the admin's usual ones; schedules
# are created by the worker (paused, edited or run now here).
ADMIN_EDITED_MODELS = {
    "accounts.team",
    "failures.ownerrule",
    "failures.timingwindow",
    "auth.user",
    "auth.group",
}
ADMIN_NOT_ADDED_MODELS = {"worker.schedule"}


def admin_rows() -> dict[str, Row]:
    """Rows for each model the admin site registers, from the sets above; the `<id>/` shortcut
    (a redirect to the change page) and users' password page are included."""
    from django.contrib import admin

    rows: dict[str, Row] = {}
    for model in admin.site._registry:
        label = model._meta.label_lower
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        edited = label in ADMIN_EDITED_MODELS
        not_added = label in ADMIN_NOT_ADDED_MODELS
        rows[f"{prefix}_changelist"] = STAFF
        rows[f"{prefix}_history"] = STAFF
        rows[f"{prefix}_add"] = STAFF if edited else STAFF_REFUSED
        rows[f"{prefix}_delete"] = STAFF if edited or not_added else STAFF_REFUSED
        rows[f"{prefix}_change"] = STAFF if edited or not_added else STAFF_VIEW_ONLY
        rows[f"admin/{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/"] = STAFF
    rows["admin:auth_user_password_change"] = STAFF
    return rows


def access_table() -> dict[str, Row]:
    return {**ACCESS_TABLE, **admin_rows()}


# ---------------------------------------------------------------------------------------------
# Walking the URL patterns and filling their parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    key: str  # the URL name ("admin:index"), or the route for an unnamed pattern
    route: str
    name: str | None
    params: tuple[str, ...]
    callback: Callable

    @property
    def csrf_exempt(self) -> bool:
        return bool(getattr(self.callback, "csrf_exempt", False))


def url_patterns() -> list[Pattern]:
    """Every pattern of notifwatch.urls, through includes, with its full route."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix: str, namespace: str) -> Iterator[Pattern]:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                inner = entry.namespace or ""
                yield from walk(entry.url_patterns, route, f"{namespace}:{inner}".strip(":") or "")
            elif isinstance(entry, URLPattern):
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
                params = tuple(entry.pattern.regex.groupindex)
                yield Pattern(name or route, route, name, params, entry.callback)

    return list(walk(get_resolver().url_patterns, "", ""))


@dataclass
class World:
    """The real objects whose ids fill the path parameters, and the cast of users."""

    users: dict[str, object]  # role -> user (no entry for anonymous)
    values: dict[str, dict[str, str]]  # pattern key -> {param: value}
    defaults: dict[str, str]  # param -> value when the pattern has no entry of its own


def build_world() -> World:
    """Create a source with quarantined and parsed lines, notifications, exceptions, a review
    with its agenda, and one user per role (the admin a superuser, as createsuperuser makes)."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType

    from notifwatch.accounts.models import Membership
    from notifwatch.deliveries.models import Notification
    from notifwatch.failures.detection import run_checks
    from notifwatch.failures.models import FailureGroup
    from notifwatch.failures.reviews import start_review
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.importer import import_path
    from notifwatch.ingest.models import Outcome, RawEvent
    from notifwatch.ingest.presets import load_preset

    User = get_user_model()
    users: dict[str, object] = {}
    for role in SIGNED_IN:
        user = User.objects.create_user(
            username=f"access-{role}",
            password=f"access-{role}-password",
            is_staff=role == "admin",
            is_superuser=role == "admin",
        )
        if role != "no_role":
            Membership.objects.create(user=user, role=role)
        users[role] = user
    target = User.objects.create_user(username="access-target", password="access-target-pw")
    Membership.objects.create(user=target, role="viewer")

    source = save_source(
        slug="access-inhouse", kind="json", mapping=load_preset("inhouse_log")
    ).source
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "inhouse"
    for name in ("01_retry_503_timeout_then_delivered.jsonl", "05_malformed_and_edge_lines.jsonl"):
        import_path(source, str(fixtures / name))
    run_checks()
    group = FailureGroup.objects.order_by("pk").first()
    review, _ = start_review(users["admin"])
    item = review.items.order_by("position").first()
    notification = Notification.objects.filter(source=source).order_by("pk").first()
    raw = RawEvent.objects.filter(source=source, outcome=Outcome.QUARANTINED).first()
    if not (group and item and notification and raw):
        raise RuntimeError(
            "the matrix's data is incomplete: "
            f"exception {group}, review item {item}, notification {notification}, raw {raw}"
        )
    admin_objects(source)
    team_subscription = team_subscription_for_matrix()
    monday = date.today() - timedelta(days=date.today().weekday())

    values: dict[str, dict[str, str]] = {
        "raw_event_detail": {"pk": str(raw.pk)},
        "notification_detail": {"pk": str(notification.pk)},
        "user_edit": {"pk": str(target.pk)},
        "alerts_team": {"team_id": str(team_subscription.team_id)},
        "alert_subscription": {"pk": str(team_subscription.pk)},
        "admin:view_on_site": {
            "content_type_id": str(ContentType.objects.get_for_model(type(source)).pk),
            "object_id": str(source.pk),
        },
        "admin:app_list": {"app_label": "ingest"},
        "admin:auth_user_password_change": {"id": str(target.pk)},
        "admin/(?P<url>.*)$": {"url": "no-such-page/"},
    }
    for name in (
        "exception_detail",
        "exception_action",
        "exception_notifications_export",
        "api_exception",
    ):
        values[name] = {"pk": str(group.pk)}
    for name in ("review_detail", "review_decide", "review_finish", "review_confirm_routing"):
        values[name] = {"pk": str(review.pk), "item_pk": str(item.pk)}
    values["review_minutes"] = {"pk": str(review.pk)}
    # Admin object pages: an existing object of each registered model.
    for model in admin.site._registry:
        obj = model._default_manager.order_by("pk").first()
        if obj is None:
            continue
        meta = model._meta
        for view in ("history", "delete", "change"):
            values[f"admin:{meta.app_label}_{meta.model_name}_{view}"] = {"object_id": str(obj.pk)}
        values[f"admin/{meta.app_label}/{meta.model_name}/<path:object_id>/"] = {
            "object_id": str(obj.pk)
        }
    defaults = {"slug": source.slug, "fmt": "csv", "week": monday.isoformat()}
    return World(users=users, values=values, defaults=defaults)


def team_subscription_for_matrix():
    """A team's email subscription (its page is an admin's); the matrix posts it empty forms."""
    from notifwatch.accounts.models import Team
    from notifwatch.alerts.models import Subscription

    team = Team.objects.create(name="Access matrix alerts team")
    return Subscription.objects.create(
        team=team, kind="assigned", channel="email", target="team@example.com"
    )


def admin_objects(source) -> None:
    """One object of each model the admin shows that the data above did not make."""
    from django.contrib.auth.models import Group
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from notifwatch.accounts.models import Team
    from notifwatch.failures.models import OwnerRule, TimingWindow, UnknownCode
    from notifwatch.worker.scheduling import ensure_schedules

    now = timezone.now()
    team = Team.objects.create(name="Access matrix team")
    OwnerRule.objects.create(team=team, kind="delivery_failure")
    TimingWindow.objects.create(source=source, purpose="access_matrix", seconds=600)
    UnknownCode.objects.get_or_create(
        provider="access", code="X-1", defaults={"first_seen": now, "last_seen": now}
    )
    Group.objects.create(name="access matrix group")
    ensure_schedules(now)
    DBTaskResult.objects.create(
        enqueued_at=now,
        run_after=now,
        args_kwargs={"args": [], "kwargs": {}},
        task_path="notifwatch.ingest.tasks.reprocess_source",
        backend_name="default",
        exception_class_path="",
        traceback="",
    )


def url_for(pattern: Pattern, world: World) -> str:
    """The pattern's address with every parameter filled; KeyError names a missing one."""
    from django.urls import reverse

    given = world.values.get(pattern.key, {})
    kwargs = {}
    for param in pattern.params:
        if param in given:
            kwargs[param] = given[param]
        elif param in world.defaults:
            kwargs[param] = world.defaults[param]
        else:
            raise KeyError(f"no value for <{param}> in {pattern.key}")
    if pattern.name:
        return reverse(pattern.name, kwargs=kwargs)
    # Unnamed patterns: substitute into the route (`<conv:name>` or a regex group).

    url = pattern.route
    for param, value in kwargs.items():
        url = re.sub(rf"<(?:\w+:)?{param}>|\(\?P<{param}>[^)]*\)", value, url)
    return "/" + url.lstrip("^").rstrip("$")


# ---------------------------------------------------------------------------------------------
# Asking and classing the answers
# ---------------------------------------------------------------------------------------------


def classify(response) -> str:
    status = response.status_code
    if status >= 500:
        return SERVER_ERROR
    if status in (301, 302, 303, 307, 308):
        location = urlsplit(response["Location"])
        if location.path.rstrip("/").endswith("login") and "next=" in location.query:
            return LOGIN
        return ALLOWED
    if status == 403:
        return CSRF if b"CSRF verification failed" in response.content else FORBIDDEN
    if status in (401, 404, 405):
        return str(status)
    if 200 <= status < 300 or status in (400, 413, 422):
        return ALLOWED
    return str(status)


@dataclass
class Cell:
    key: str
    url: str
    role: str
    method: str
    expected: str
    got: str
    status: int

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass
class MatrixResult:
    cells: list[Cell]
    problems: list[str]  # patterns without a row, rows without a pattern, unfillable params

    @property
    def mismatches(self) -> list[Cell]:
        return [cell for cell in self.cells if not cell.ok]

    @property
    def clean(self) -> bool:
        return not self.problems and not self.mismatches


CSRF_TOKEN = "accessmatrixcsrftoken0123456789a"  # 32 characters: an unmasked CSRF secret


def check_access(
    world: World,
    *,
    only: Callable[[Pattern], bool] | None = None,
    as_roles: tuple[str, ...] = ROLES,
    csrf_roles: tuple[str, ...] = ROLES,
) -> MatrixResult:
    """Ask every pattern (or those `only` keeps) as each of `as_roles` and compare with the
    table; the POST without a CSRF token is sent as each of `csrf_roles`."""
    from django.test import Client

    table = access_table()
    patterns = [p for p in url_patterns() if only is None or only(p)]
    problems = table_problems(table)
    # One client per role for the whole walk (a new one loads every middleware again).
    clients = {role: Client(enforce_csrf_checks=True) for role in as_roles}
    cells: list[Cell] = []
    for pattern in patterns:
        row = table.get(pattern.key)
        if row is None:
            continue
        try:
            url = url_for(pattern, world)
        except KeyError as missing:
            problems.append(str(missing.args[0]))
            continue
        for role in as_roles:
            ask = partial(ask_once, clients[role], world.users.get(role), url)
            cells.append(Cell(pattern.key, url, role, "GET", row.get[role], *ask("GET")))
            cells.append(Cell(pattern.key, url, role, "POST", row.post[role], *ask("POST")))
            if role in csrf_roles and not pattern.csrf_exempt:
                got = ask("POST", token=False)
                cells.append(Cell(pattern.key, url, role, METHODS[2], CSRF, *got))
    return MatrixResult(cells, problems)


def table_problems(table: dict[str, Row] | None = None) -> list[str]:
    """URL patterns without a row (a new page nobody decided about), and rows without one."""
    table = access_table() if table is None else table
    patterns = url_patterns()
    keys = {p.key for p in patterns}
    return [
        f"URL pattern {p.key!r} ({p.route}) has no row in the access table"
        for p in patterns
        if p.key not in table
    ] + [f"access table row {key!r} matches no URL pattern" for key in table if key not in keys]


def ask_once(client, user, url: str, method: str, *, token: bool = True) -> tuple[str, int]:
    """One request as `user` (None: anonymous); returns the answer's class and status."""
    from django.conf import settings

    session = client.cookies.get(settings.SESSION_COOKIE_NAME)
    if user is not None and (session is None or not session.value):
        client.force_login(user)  # first time, or again after a logout page ended the session
    if method == "GET":
        response = client.get(url)
    elif token:
        client.cookies["csrftoken"] = CSRF_TOKEN
        response = client.post(url, {}, headers={"X-CSRFToken": CSRF_TOKEN})
    else:
        client.cookies.pop("csrftoken", None)
        response = client.post(url, {})
    return classify(response), response.status_code


def matrix_lines(result: MatrixResult) -> list[str]:
    """One line per pattern: what each role got for GET / POST / POST without a token."""
    by_key: dict[str, dict[tuple[str, str], Cell]] = {}
    for cell in result.cells:
        by_key.setdefault(cell.key, {})[(cell.role, cell.method)] = cell
    width = max((len(key) for key in by_key), default=10)
    lines = [f"{'pattern':<{width}}  " + "  ".join(f"{role:<23}" for role in ROLES)]
    lines.append(f"{'':<{width}}  " + "  ".join(f"{'GET/POST/no-token':<23}" for _ in ROLES))
    for key, cells in by_key.items():
        parts = []
        for role in ROLES:
            got = [cells.get((role, method)) for method in METHODS]
            text = "/".join("-" if c is None else (c.got if c.ok else f"{c.got}!") for c in got)
            parts.append(f"{text:<23}")
        lines.append(f"{key:<{width}}  " + "  ".join(parts))
    return lines


def mismatch_lines(result: MatrixResult) -> list[str]:
    lines = list(result.problems)
    for cell in result.mismatches:
        lines.append(
            f"{cell.method} {cell.url} as {cell.role}: expected {cell.expected}, "
            f"got {cell.got} ({cell.status})"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability access",
        description="Every URL pattern x every role x GET/POST against the access table.",
    )
    parser.add_argument("--quick", action="store_true", help="the same (it takes seconds)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="a temporary SQLite database")
    where.add_argument(
        "--database-url",
        help="a PostgreSQL server to create the scratch database nw_reliability_access on "
        "(default: a private cluster of the harness's own)",
    )
    parser.add_argument("--quiet", action="store_true", help="no matrix, only the mismatches")
    parser.add_argument("--keep", action="store_true", help="keep the private cluster")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with scratch(args) as url:
        result = run_matrix(url)
        seconds = time.monotonic() - started
        if not args.quiet:
            print("\n".join(matrix_lines(result)))
            print(
                "  (allowed: the view ran; login: sent to log in; csrf: refused by the CSRF "
                "check; !: not what the table says)"
            )
        mismatches = mismatch_lines(result)
        for line in mismatches:
            print(f"  MISMATCH {line}")
        patterns = len({cell.key for cell in result.cells})
        verdict = "FAIL" if mismatches else "PASS"
        print(
            f"access: {verdict} {len(mismatches)} mismatches; {patterns} URL patterns x "
            f"{len(ROLES)} roles x {len(METHODS)} methods = {len(result.cells)} answers "
            f"in {seconds:.1f} s on {url.split(':')[0]}"
        )
    return 1 if mismatches else 0


@contextmanager
def scratch(args) -> Iterator[str]:
    """The database the matrix runs on: SQLite, a server's scratch database, or a private
    PostgreSQL cluster (the default), removed afterwards."""
    if args.sqlite or args.database_url:
        from bench.scratch import scratch_database

        yield scratch_database(args.database_url, "nw_reliability_access")
        return
    from bench.reliability.cluster import PrivateCluster

    with PrivateCluster(keep=args.keep) as cluster:
        yield cluster.create_database("nw_access")
        from django.db import connections

        connections.close_all()


def run_matrix(url: str) -> MatrixResult:
    """Set Django up on `url` (migrated), create the data and ask every cell."""
    import os
    import warnings

    from bench.scratch import setup_django

    # The database queue, as in production (the admin shows its task results); the reprocess
    # button only enqueues here, no worker runs.
    os.environ.pop("TASKS_BACKEND", None)
    warnings.filterwarnings("ignore", message="No directory at")
    setup_django(url)
    from django.conf import settings
    from django.test.utils import setup_test_environment

    setup_test_environment()  # what the test client needs (templates rendered, testserver)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Every 401/403/404/405 would be logged as a warning: only server errors are news here.
    for name in ("django.request", "django.security.csrf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per sign-in of the matrix
    return check_access(build_world())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
