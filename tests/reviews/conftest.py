from types import SimpleNamespace

import pytest

from notifwatch.accounts.models import Team
from notifwatch.failures.actions import assign, set_status, snooze
from notifwatch.failures.models import Status
from tests.reviews.data import ago, bounces, created, silence


@pytest.fixture
def teams(db) -> dict[str, Team]:
    return {name: Team.objects.create(name=name) for name in ("Billing", "CRM admins", "Platform")}


@pytest.fixture
def week(json_source, teams):
    """Three weeks of a billing sender's trouble: one exception for each reason to be on the
    agenda, and three that are not (quiet, barely grown, snoozed)."""
    long_ago = ago(days=20)
    g = SimpleNamespace()

    g.regressed = created(bounces(json_source, "password_reset", 2, long_ago), long_ago)
    assign(g.regressed, team=teams["Platform"])
    set_status(g.regressed, Status.RESOLVED)
    bounces(json_source, "password_reset", 1, ago(days=1), first=2)

    g.silent = created(silence(json_source, ago(hours=5)), long_ago)
    assign(g.silent, team=teams["Platform"])

    g.new = bounces(json_source, "order_confirmation", 3, ago(days=1))

    g.grown = created(bounces(json_source, "invoice", 4, long_ago), long_ago)
    assign(g.grown, team=teams["Billing"])
    bounces(json_source, "invoice", 2, ago(days=1), first=4)  # 4 → 6: +50%

    g.unowned = created(bounces(json_source, "appointment_reminder", 1, long_ago), long_ago)

    g.steady = created(bounces(json_source, "ticket_update", 10, long_ago), long_ago)
    assign(g.steady, team=teams["CRM admins"])
    bounces(json_source, "ticket_update", 1, ago(days=1), first=10)  # 10 → 11: +10%, not grown

    g.quiet = created(bounces(json_source, "renewal_notice", 2, long_ago), long_ago)
    assign(g.quiet, team=teams["Billing"])

    g.snoozed = bounces(json_source, "shipping_update", 2, ago(days=2))
    snooze(g.snoozed, ago(days=-14))

    for name in vars(g):
        getattr(g, name).refresh_from_db()
    return g
