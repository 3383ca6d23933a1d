"""The action functions without HTTP: guards, audit entries, no passwords stored."""

import threading

import pytest
from django.db import connection

from notifwatch.accounts import actions
from notifwatch.accounts.actions import (
    AccountError,
    change_role,
    create_user,
    set_active,
    set_password,
    set_personal_data_grant,
    set_teams,
    set_time_zone,
)
from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry
from tests.accounts.conftest import audit_text
from tests.conftest import make_user


def test_create_user_writes_one_entry_and_no_password(admin_user, teams):
    created = create_user(
        username="sam", role="reviewer", teams=[teams["Support"]], actor=admin_user
    )
    assert created.generated_password
    assert created.user.check_password(created.generated_password)
    entry = AuditEntry.objects.get()
    assert entry.action == "user.created"
    assert entry.new["teams"] == ["Support"]
    assert created.generated_password not in audit_text([entry])
    assert created.user.password not in audit_text([entry])


def test_create_user_refuses_a_taken_username(admin_user):
    with pytest.raises(AccountError) as refused:
        create_user(username="alice", role="viewer", actor=admin_user)
    assert refused.value.field == "username"
    assert not AuditEntry.objects.exists()


def test_change_role_away_from_auditor_drops_the_grant(admin_user, django_user_model):
    gina = make_user(django_user_model, "gina", "auditor", personal_data_granted=True)

    membership = change_role(gina, "viewer", actor=admin_user)

    assert (membership.role, membership.personal_data_granted) == ("viewer", False)
    assert not Membership.objects.get(user=gina).sees_personal_data
    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.old, e.new) for e in entries] == [
        ("user.role_changed", {"role": "auditor"}, {"role": "viewer"}),
        (
            "user.personal_data_changed",
            {"personal_data_granted": True},
            {"personal_data_granted": False},
        ),
    ]


def test_grant_is_for_auditors_only(admin_user, viewer):
    with pytest.raises(AccountError) as refused:
        set_personal_data_grant(viewer, True, actor=admin_user)
    assert refused.value.field == "personal_data_granted"


def test_the_system_cannot_remove_the_last_admin_either(admin_user):
    with pytest.raises(AccountError, match="alice is the last active admin"):
        change_role(admin_user, "viewer", actor=None)
    with pytest.raises(AccountError, match="alice is the last active admin"):
        set_active(admin_user, False, actor=None)
    assert not AuditEntry.objects.exists()


def test_deactivating_a_non_admin_needs_no_other_admin(admin_user, viewer):
    set_active(viewer, False, actor=admin_user)
    viewer.refresh_from_db()
    assert not viewer.is_active


def test_set_teams_records_only_changes(admin_user, reviewer, teams):
    set_teams(reviewer, [teams["Billing"]], actor=admin_user)
    set_teams(reviewer, [teams["Billing"]], actor=admin_user)
    assert AuditEntry.objects.count() == 1


def test_set_password_returns_only_a_generated_password(admin_user, viewer):
    assert set_password(viewer, "a-chosen-password-9", actor=admin_user) is None
    generated = set_password(viewer, actor=admin_user)
    viewer.refresh_from_db()
    assert viewer.check_password(generated)
    assert generated not in audit_text(AuditEntry.objects.all())
    assert "a-chosen-password-9" not in audit_text(AuditEntry.objects.all())


def test_set_time_zone_validates_and_records(viewer):
    set_time_zone(viewer, "Europe/Paris", actor=viewer)
    with pytest.raises(AccountError):
        set_time_zone(viewer, "Mars/Olympus_Mons", actor=viewer)
    set_time_zone(viewer, "", actor=viewer)
    entries = AuditEntry.objects.order_by("id")
    assert [(e.old, e.new) for e in entries] == [
        ({"time_zone": ""}, {"time_zone": "Europe/Paris"}),
        ({"time_zone": "Europe/Paris"}, {"time_zone": ""}),
    ]
    assert entries[0].actor == viewer


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_themselves_at_once_leave_one_admin(django_user_model, monkeypatch):
    alice = make_user(django_user_model, "alice", "admin")
    olga = make_user(django_user_model, "olga", "admin")
    # Each waits here (inside its transaction, after taking its locks) for the other; with the
    # locks, the second one only gets here after the first committed, and the wait times out.
    both_checked = threading.Barrier(2)
    real_check = actions.ensure_another_admin

    def racing_check(user, *, field):
        try:
            both_checked.wait(timeout=1)
        except threading.BrokenBarrierError:
            pass
        real_check(user, field=field)

    monkeypatch.setattr(actions, "ensure_another_admin", racing_check)
    refused: list[str] = []
    errors: list[BaseException] = []

    def demote(user) -> None:
        try:
            change_role(user, "viewer", actor=user)
        except AccountError:
            refused.append(user.get_username())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=(u,)) for u in (alice, olga)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(refused) == 1
    assert Membership.objects.filter(role="admin").count() == 1
    assert AuditEntry.objects.filter(action="user.role_changed").count() == 1
