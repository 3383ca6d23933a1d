from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.urls import reverse

from notifwatch.accounts.actions import set_active, set_teams
from notifwatch.accounts.models import Membership
from tests.conftest import make_user


def test_it_lists_users_with_role_grant_teams_last_login_and_status(
    client, django_user_model, admin_user, reviewer, viewer, teams
):
    granted = make_user(django_user_model, "gina", "auditor", personal_data_granted=True)
    make_user(django_user_model, "masha", "auditor")
    make_user(django_user_model, "norole", None)
    set_teams(reviewer, [teams["Billing"], teams["Support"]], actor=admin_user)
    set_active(viewer, False, actor=admin_user)
    get_user_model().objects.filter(pk=granted.pk).update(
        last_login=datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    )
    client.force_login(admin_user)

    response = client.get(reverse("user_list"))

    assert response.status_code == 200
    content = response.content.decode()
    assert [u.get_username() for u in response.context["users"]] == [
        "alice",
        "gina",
        "masha",
        "norole",
        "rita",
        "victor",  # deactivated users come last
    ]
    rows = dict(
        zip(
            ("alice", "gina", "masha", "norole", "rita", "victor"),
            content.split("<tr")[2:],
            strict=True,
        )
    )
    assert '<span class="badge r-admin">Admin</span>' in rows["alice"]
    assert "(you)" in rows["alice"]
    assert "Granted" in rows["gina"]
    assert "Mar 14, 2025 09:30" in rows["gina"]
    assert "Masked" in rows["masha"] and "Granted" not in rows["masha"]
    assert "No role" in rows["norole"]
    assert "Billing, Support" in rows["rita"]
    assert "never" in rows["rita"]
    assert "Deactivated" in rows["victor"]
    assert reverse("user_edit", args=[viewer.pk]) in rows["victor"]
    assert reverse("user_new") in content


def test_it_uses_the_same_number_of_queries_for_many_users(
    client, django_user_model, admin_user, teams, django_assert_max_num_queries
):
    for n in range(30):
        user = make_user(django_user_model, f"user{n}", "viewer")
        user.teams.set(teams.values())
    client.force_login(admin_user)
    # Session, user, own membership, users with memberships, their teams.
    with django_assert_max_num_queries(6):
        response = client.get(reverse("user_list"))
    assert response.status_code == 200
    assert Membership.objects.count() == 31
