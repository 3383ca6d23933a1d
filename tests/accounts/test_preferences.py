import pytest
from django.urls import reverse

from notifwatch.accounts.models import Membership
from notifwatch.audit.models import AuditEntry


def test_it_offers_the_server_default_first_then_sorted_zones(client, viewer, settings):
    settings.TIME_ZONE = "Europe/Paris"
    client.force_login(viewer)

    response = client.get(reverse("preferences"))

    assert response.status_code == 200
    choices = response.context["form"].fields["time_zone"].choices
    assert choices[0] == ("", "Server default (Europe/Paris)")
    zones = [zone for _, group in choices[1:] for zone, _ in group]
    regions = [region for region, _ in choices[1:]]
    assert "America/New_York" in zones and "UTC" in zones
    assert "localtime" not in zones
    assert regions[:3] == ["Africa", "America", "Antarctica"] and regions[-1] == "Other"
    for _, group in choices[1:]:
        names = [zone for zone, _ in group]
        assert names == sorted(names)
    content = response.content.decode()
    assert content.index('<option value="" selected>Server default (Europe/Paris)</option>') < (
        content.index('value="Africa/Abidjan"')
    )


@pytest.mark.parametrize("role", ["admin_user", "reviewer", "viewer", "auditor"])
def test_every_role_saves_its_zone(client, request, role):
    user = request.getfixturevalue(role)
    client.force_login(user)

    response = client.post(reverse("preferences"), {"time_zone": "America/New_York"}, follow=True)

    assert response.redirect_chain == [(reverse("preferences"), 302)]
    assert Membership.objects.get(user=user).time_zone == "America/New_York"
    content = response.content.decode()
    assert "Times are now shown in America/New_York." in content
    assert "Times are shown in <strong>America/New_York</strong>" in content
    assert response.context["time_zone_name"] == "America/New_York"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.target_id) == (
        "user.time_zone_changed",
        user,
        str(user.pk),
    )


def test_it_goes_back_to_the_server_default(client, viewer):
    Membership.objects.filter(user=viewer).update(time_zone="Asia/Tokyo")
    client.force_login(viewer)
    response = client.post(reverse("preferences"), {"time_zone": ""}, follow=True)
    assert Membership.objects.get(user=viewer).time_zone == ""
    assert "Times are now shown in UTC." in response.content.decode()


def test_it_refuses_an_unknown_zone(client, viewer):
    client.force_login(viewer)
    response = client.post(reverse("preferences"), {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    assert 'id="time_zone-errors"' in response.content.decode()
    assert Membership.objects.get(user=viewer).time_zone == ""
    assert not AuditEntry.objects.exists()


def test_it_refuses_users_without_a_role(client, no_role_user):
    client.force_login(no_role_user)
    assert client.get(reverse("preferences")).status_code == 403
    assert client.post(reverse("preferences"), {"time_zone": "UTC"}).status_code == 403
