"""The red banner on signed-in pages when notifwatch itself needs attention."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifwatch.alerts.models import Alert, AlertKind
from notifwatch.health.actions import note_health
from notifwatch.health.checks import check_health
from notifwatch.worker.models import Schedule

pytestmark = pytest.mark.django_db

BANNER = 'class="notice notice-error health-banner" role="alert"'


def page(client, user, name="home") -> str:
    client.force_login(user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    return response.content.decode()


def test_it_is_not_shown_when_healthy(client, viewer, healthy):
    assert BANNER not in page(client, viewer)


def test_it_is_shown_on_every_page_when_the_worker_stopped(client, viewer, worker_stopped):
    for name in ("home", "exception_list", "source_list"):
        content = page(client, viewer, name)
        assert BANNER in content
        assert "notifwatch itself needs attention: no worker heartbeat for 9 minutes" in content
        assert "detection has not run for 9 minutes" in content


def test_a_stopped_worker_seen_by_the_banner_alerts_once(
    client, viewer, worker_stopped, health_subscriber, mailoutbox
):
    page(client, viewer)
    page(client, viewer, "exception_list")

    assert (
        Alert.objects.filter(kind=AlertKind.HEALTH, key__startswith="health:worker:").count() == 1
    )
    assert [m.subject for m in mailoutbox].count(
        "notifwatch needs attention: worker is failing"
    ) == 1


def test_it_shows_what_the_worker_noted_failing(client, viewer, healthy):
    Schedule.objects.filter(name="run_checks").update(
        last_succeeded_at=timezone.now() - timedelta(minutes=42)
    )
    note_health(check_health())  # the worker's watch_health job

    content = page(client, viewer)

    assert BANNER in content
    assert (
        "notifwatch itself needs attention: detection has not run for 42 minutes "
        "(is `manage.py run_worker` running?)"
    ) in content


def test_it_says_so_when_no_worker_ever_ran(client, viewer, db):
    content = page(client, viewer)

    assert "notifwatch itself needs attention: no worker has ever sent a heartbeat" in content


def test_it_is_not_shown_on_the_login_page(client, worker_stopped):
    assert BANNER not in client.get(reverse("login")).content.decode()


def test_it_costs_two_queries_and_then_none_for_a_while(client, viewer, healthy):
    client.force_login(viewer)
    client.get(reverse("preferences"))
    cache.clear()
    with CaptureQueriesContext(connection) as cold:
        client.get(reverse("preferences"))
    with CaptureQueriesContext(connection) as warm:
        client.get(reverse("preferences"))

    # The newest heartbeat and the noted failing parts; then cached for 30 seconds.
    assert len(cold) - len(warm) == 2
