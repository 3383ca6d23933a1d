"""Dates on pages follow the user's time zone; the server's zone otherwise."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.models import Membership
from notifwatch.ingest.models import Outcome, RawEvent

LAST_RECEIVED = "2025-03-14T10:00:00Z"


@pytest.fixture
def received(json_source):
    return RawEvent.objects.create(
        source=json_source,
        received_at=LAST_RECEIVED,
        transport="api",
        body=b"{}",
        content_hash="x",
        outcome=Outcome.PARSED,
    )


def zone(user, name: str) -> None:
    Membership.objects.filter(user=user).update(time_zone=name)


def test_it_shows_times_in_the_server_zone_by_default(client, viewer, received):
    client.force_login(viewer)
    content = client.get(reverse("source_list")).content.decode()
    assert "Mar 14, 10:00:00" in content
    assert "Times are shown in UTC." in content


def test_it_shows_times_in_the_users_zone(client, viewer, received):
    zone(viewer, "America/New_York")  # EDT since March 9, 2025: UTC-4
    client.force_login(viewer)

    content = client.get(reverse("source_list")).content.decode()

    assert "Mar 14, 06:00:00" in content
    assert "Mar 14, 10:00:00" not in content
    assert "Times are shown in America/New_York." in content


def test_preferences_change_the_hour_on_the_sources_page(client, reviewer, received):
    client.force_login(reviewer)
    assert "Mar 14, 10:00:00" in client.get(reverse("source_list")).content.decode()

    client.post(reverse("preferences"), {"time_zone": "Asia/Kolkata"})

    assert "Mar 14, 15:30:00" in client.get(reverse("source_list")).content.decode()


def test_it_falls_back_to_the_server_zone(client, viewer, received, settings):
    settings.TIME_ZONE = "Europe/Paris"  # CET in March: UTC+1
    zone(viewer, "")
    client.force_login(viewer)
    content = client.get(reverse("source_list")).content.decode()
    assert "Mar 14, 11:00:00" in content
    assert "Times are shown in Europe/Paris." in content


def test_it_falls_back_when_the_zone_is_no_longer_known(client, viewer, received):
    zone(viewer, "Mars/Olympus_Mons")
    client.force_login(viewer)
    response = client.get(reverse("source_list"))
    assert response.status_code == 200
    assert "Mar 14, 10:00:00" in response.content.decode()


def test_it_leaves_no_zone_behind_for_the_next_request(client, viewer, received):
    zone(viewer, "Asia/Tokyo")
    client.force_login(viewer)
    client.get(reverse("source_list"))
    assert timezone.get_current_timezone_name() == "UTC"
    client.logout()
    assert "Times are shown in UTC." in client.get(reverse("login")).content.decode()


def test_it_costs_no_query_beyond_the_role_check(client, viewer, received):
    zone(viewer, "Asia/Tokyo")
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("source_list"))
    membership_queries = [q for q in captured.captured_queries if "accounts_membership" in q["sql"]]
    assert len(membership_queries) == 1
