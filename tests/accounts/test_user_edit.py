import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry
from tests.accounts.conftest import audit_text
from tests.conftest import make_user

STRONG = "correct-horse-battery-42"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def edit(admin_client, user, **fields):
    data = {"form": "access", "role": "viewer", "is_active": "on"} | fields
    return admin_client.post(reverse("user_edit", args=[user.pk]), data)


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def test_it_shows_the_user_with_current_values(admin_client, auditor, teams):
    auditor.teams.add(teams["Support"])
    response = admin_client.get(reverse("user_edit", args=[auditor.pk]))
    form = response.context["form"]
    assert form.initial["role"] == "auditor"
    assert form.initial["is_active"] is True
    assert [t.name for t in form.initial["teams"]] == ["Support"]
    content = response.content.decode()
    assert 'value="auditor" id="id_role_3" required checked' in content


def test_it_changes_the_role_with_an_audit_entry(admin_client, admin_user, viewer):
    response = edit(admin_client, viewer, role="reviewer")

    assert response.status_code == 302
    assert response["Location"] == reverse("user_edit", args=[viewer.pk])
    assert Membership.objects.get(user=viewer).role == "reviewer"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.old, entry.new) == (
        "user.role_changed",
        {"role": "viewer"},
        {"role": "reviewer"},
    )
    assert entry.actor == admin_user
    assert entry.target_id == str(viewer.pk)


def test_it_records_nothing_when_nothing_changed(admin_client, viewer):
    assert edit(admin_client, viewer).status_code == 302
    assert actions() == []


def test_it_gives_a_user_without_a_role_one(admin_client, no_role_user):
    edit(admin_client, no_role_user, role="viewer")
    assert Membership.objects.get(user=no_role_user).role == "viewer"
    entry = AuditEntry.objects.get()
    assert (entry.old, entry.new) == ({"role": None}, {"role": "viewer"})


def test_it_grants_and_revokes_personal_data_for_auditors(admin_client, auditor):
    edit(admin_client, auditor, role="auditor", personal_data_granted="on")
    assert Membership.objects.get(user=auditor).sees_personal_data
    edit(admin_client, auditor, role="auditor")
    assert not Membership.objects.get(user=auditor).sees_personal_data

    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.old, e.new) for e in entries] == [
        (
            "user.personal_data_changed",
            {"personal_data_granted": False},
            {"personal_data_granted": True},
        ),
        (
            "user.personal_data_changed",
            {"personal_data_granted": True},
            {"personal_data_granted": False},
        ),
    ]


def test_it_refuses_the_grant_for_a_viewer(admin_client, viewer):
    response = edit(admin_client, viewer, personal_data_granted="on")
    assert response.status_code == 200
    assert 'id="personal_data_granted-errors"' in response.content.decode()
    assert not Membership.objects.get(user=viewer).personal_data_granted
    assert actions() == []


def test_it_sets_teams_with_names_in_the_audit_entry(admin_client, reviewer, teams):
    reviewer.teams.add(teams["Support"])

    edit(
        admin_client, reviewer, role="reviewer", teams=[teams["Billing"].pk, teams["CRM admins"].pk]
    )

    assert sorted(t.name for t in reviewer.teams.all()) == ["Billing", "CRM admins"]
    entry = AuditEntry.objects.get()
    assert entry.action == "user.teams_changed"
    assert entry.old == {"teams": ["Support"]}
    assert entry.new == {"teams": ["Billing", "CRM admins"]}


def test_it_deactivates_and_the_user_is_signed_out(client, admin_user, viewer):
    from django.test import Client

    victor = Client()
    victor.force_login(viewer)
    assert victor.get(reverse("home")).status_code == 200
    client.force_login(admin_user)

    response = edit(client, viewer, is_active="")

    assert response.status_code == 302
    viewer.refresh_from_db()
    assert not viewer.is_active
    assert get_user_model().objects.filter(pk=viewer.pk).exists()  # kept, not deleted
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.old, entry.new) == (
        "user.deactivated",
        {"is_active": True},
        {"is_active": False},
    )
    assert victor.get(reverse("home"))["Location"].startswith(reverse("login"))
    assert not Client().login(username="victor", password="pw-victor")

    edit(client, viewer, is_active="on")
    viewer.refresh_from_db()
    assert viewer.is_active
    assert actions() == ["user.deactivated", "user.reactivated"]
    assert Client().login(username="victor", password="pw-victor")


def test_it_keeps_the_last_admin_an_admin(admin_client, admin_user):
    response = edit(admin_client, admin_user, role="viewer")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="role-errors"' in content
    assert "alice is the last active admin. Make another user an admin first" in content
    assert Membership.objects.get(user=admin_user).role == "admin"
    assert actions() == []


def test_it_keeps_the_last_admin_active(admin_client, admin_user):
    response = edit(admin_client, admin_user, role="admin", is_active="")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="is_active-errors"' in content
    assert "alice is the last active admin" in content
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert actions() == []


def test_it_changes_nothing_when_one_part_is_refused(admin_client, admin_user, teams):
    edit(admin_client, admin_user, role="admin", teams=[teams["Billing"].pk], is_active="")
    assert list(admin_user.teams.all()) == []
    assert actions() == []


def test_a_deactivated_admin_does_not_count(admin_client, django_user_model, admin_user):
    other = make_user(django_user_model, "olga", "admin")
    other.is_active = False
    other.save()
    response = edit(admin_client, admin_user, role="viewer")
    assert "alice is the last active admin" in response.content.decode()


def test_an_admin_can_hand_over_when_another_admin_remains(
    admin_client, django_user_model, admin_user
):
    make_user(django_user_model, "olga", "admin")

    response = edit(admin_client, admin_user, role="reviewer")

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert Membership.objects.get(user=admin_user).role == "reviewer"
    assert admin_client.get(reverse("user_list")).status_code == 403


def test_it_sets_a_chosen_password(admin_client, admin_user, viewer):
    response = admin_client.post(
        reverse("user_edit", args=[viewer.pk]),
        {"form": "password", "password1": STRONG, "password2": STRONG},
    )

    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.check_password(STRONG)
    assert not viewer.check_password("pw-victor")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.old, entry.new) == ("user.password_set", None, None)
    assert entry.detail == "password chosen by the admin"
    assert STRONG not in audit_text([entry])
    admin_client.logout()
    assert admin_client.login(username="victor", password=STRONG)


def test_it_generates_a_password_and_shows_it_once(admin_client, viewer):
    response = admin_client.post(reverse("user_edit", args=[viewer.pk]), {"form": "password"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    content = response.content.decode()
    password = re.search(r"<code>([^<]+)</code>", content[content.index("secret-once") :])[1]
    viewer.refresh_from_db()
    assert viewer.check_password(password)
    entry = AuditEntry.objects.get()
    assert entry.detail == "password generated"
    assert password not in audit_text([entry])


def test_it_shows_password_errors_next_to_the_fields(admin_client, viewer):
    response = admin_client.post(
        reverse("user_edit", args=[viewer.pk]),
        {"form": "password", "password1": "victor", "password2": "victor"},
    )
    content = response.content.decode()
    assert 'id="password1-errors"' in content
    assert "The password is too similar to the username." in content
    viewer.refresh_from_db()
    assert viewer.check_password("pw-victor")
    assert actions() == []


def test_an_admin_setting_their_own_password_stays_signed_in(admin_client, admin_user):
    admin_client.post(
        reverse("user_edit", args=[admin_user.pk]),
        {"form": "password", "password1": STRONG, "password2": STRONG},
    )
    assert admin_client.get(reverse("user_list")).status_code == 200


def test_it_shows_the_users_recent_changes(admin_client, viewer):
    edit(admin_client, viewer, role="reviewer")
    content = admin_client.get(reverse("user_edit", args=[viewer.pk])).content.decode()
    assert "changed the role: role: viewer → reviewer" in content
