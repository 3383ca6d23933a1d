"""The overview page: who may see it, what it shows, what it costs."""

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.deliveries.counts import refresh_notification_counts
from notifwatch.failures.models import FailureGroup, Kind, Status
from notifwatch.ingest.actions import save_source
from tests.overview.conftest import event, post
from tests.overview.test_overview import silence

# Session, user and membership, then the overview's own: sources (with their last raw event),
# the week's notifications (the rollup's mark, its whole periods for the tables and for the
# charts, the live edges), late figures, open exceptions, open silences (counted, then the newest),
# and the alerts that could not be sent (one query, counted and the latest together); and the
# health banner of every page (the newest worker heartbeat, the parts noted failing), cached for
# 30 seconds, so sometimes none.
MAX_QUERIES = 15


def get(client, user):
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response, response.content.decode()


def test_it_needs_a_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_shows_nothing_to_a_user_without_a_role(client, no_role_user, week):
    client.force_login(no_role_user)
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert "Billing sender" not in response.content.decode()


@pytest.mark.parametrize("role", ["admin_user", "reviewer", "viewer", "auditor"])
def test_it_opens_for_every_read_role(client, role, request, week):
    response, content = get(client, request.getfixturevalue(role))
    assert "Billing sender" in content


def test_it_shows_the_day_and_the_week_per_source_and_channel(client, viewer, week):
    response, content = get(client, viewer)

    overview = response.context["o"]
    assert [r.label for r in overview.by_source] == ["Billing sender", "Shop"]
    assert [r.label for r in overview.by_channel] == ["Email", "SMS"]
    for heading in ("By source", "By channel", "Last 24 hours", "Last 7 days"):
        assert heading in content
    # Billing, last 24 hours: 3 sent, 2 of them delivered (66.6%), 1 failed.
    assert "66.6%" in content
    assert 'title="2 of 3 delivered"' in content
    assert reverse("source_detail", args=["billing"]) in content


def test_it_names_a_silent_source(client, viewer, week, shop):
    silence(shop, week)
    _, content = get(client, viewer)
    assert "⚠" in content
    assert "Shop: no events since today" in content
    assert "Shop</strong>: silent" in content


def test_it_says_so_when_every_source_reports(client, viewer, week):
    _, content = get(client, viewer)
    assert "All 2 sources reporting" in content


def test_it_counts_sources_not_heard_from_yet(client, viewer, week):
    save_source(slug="crm", kind="csv", name="CRM export")
    _, content = get(client, viewer)
    assert "2 of 3 sources reporting; 1 not heard from yet" in content
    assert "CRM export: no events yet" in content


def test_it_counts_open_exceptions_by_kind_and_owner(client, reviewer, week, json_source):
    billing = Team.objects.create(name="Billing")
    now = timezone.now()

    def group(kind, status=Status.NEW, **fields):
        return FailureGroup.objects.create(
            kind=kind, title=kind, status=status, first_seen=now, last_seen=now, **fields
        )

    kept = group(Kind.DELIVERY_FAILURE, team=billing, customers_not_reached=3)
    group(Kind.DELIVERY_FAILURE, Status.ASSIGNED, team=billing, assignee=reviewer)
    group(Kind.LATE)  # nobody's
    group(Kind.IDENTITY, Status.REGRESSED, assignee=reviewer)
    group(Kind.MAPPING_BREAK, Status.RESOLVED)
    group(Kind.SILENCE, Status.SNOOZED, source=json_source)
    group(Kind.DUPLICATE_SEND, merged_into=kept)

    response, content = get(client, reviewer)

    overview = response.context["o"]
    by_kind = {k.kind: (k.open, k.not_reached) for k in overview.by_kind}
    assert by_kind["delivery_failure"] == (2, 3)
    assert by_kind["late"] == (1, 0)
    assert by_kind["identity"] == (1, 0)
    assert by_kind["mapping_break"] == by_kind["silence"] == by_kind["duplicate_send"] == (0, 0)
    assert [(o.label, o.open) for o in overview.by_owner] == [
        ("Billing", 2),
        ("A person, no team", 1),
    ]
    assert overview.unowned == 1
    assert overview.open_total == 4
    queue = reverse("exception_list")
    assert f'href="{queue}?kind=late"' in content
    assert f'href="{queue}?owner={billing.pk}"' in content
    assert f'href="{queue}?owner=unowned"' in content
    assert "⚠ Unowned" in content


def test_it_draws_the_week_as_svg_with_text_alternatives(client, viewer, week):
    _, content = get(client, viewer)

    assert content.count("<svg") == 2
    assert 'role="img" aria-labelledby="chart-volume-t chart-volume-d"' in content
    assert '<title id="chart-volume-t">Notifications sent, per 3 hours</title>' in content
    assert '<desc id="chart-volume-d">Notifications sent, per 3 hours, from ' in content
    assert ": 9 notifications in all (delivered 5, failed 1, pending or opted out 3)" in content
    assert '<desc id="chart-failures-d">Failures, per 3 hours, from' in content
    # The legend says in words what each colour is; each bar has its own title.
    assert (
        '<span class="swatch c-bad" aria-hidden="true"></span>Failed <strong>1</strong>' in content
    )
    assert "<g><title>" in content
    assert "Show as a table" in content
    assert "<script" not in content.split("<main>")[1]


def test_it_shows_dates_in_the_users_time_zone(client, viewer, week, shop, settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    silence(shop, week)
    local_now = timezone.localtime(week, timezone.get_fixed_timezone(330))

    _, content = get(client, viewer)

    assert f"Shop: no events since today {local_now:%H:%M}" in content or (
        # Just past midnight in Kolkata: the raw events were received "yesterday".
        f"Shop: no events since {local_now:%a %H:%M}" in content
    )
    assert "(Asia/Kolkata)" in content


def test_it_explains_how_to_start_without_sources(client, admin_user):
    _, content = get(client, admin_user)
    assert "No sources yet" in content
    assert "python manage.py add_source" in content
    assert "<svg" not in content


def test_it_says_when_nothing_was_sent_this_week(client, viewer, json_source):
    _, content = get(client, viewer)
    assert "No notifications in the last 7 days" in content
    assert "No events received yet" in content
    assert "Billing sender: no events yet" in content
    assert "No open exceptions — nothing is waiting for a decision." in content
    assert "<svg" not in content


def test_it_says_when_there_were_no_failures(client, viewer, json_source):
    post(json_source, event("ok", "delivered", timezone.now() - timedelta(hours=1)))
    _, content = get(client, viewer)
    assert content.count("<svg") == 1
    assert "No failures in the last 7 days." in content


def test_it_keeps_the_shared_layout(client, viewer, admin_user):
    _, content = get(client, viewer)
    nav = content[content.index('<nav aria-label="Main">') : content.index("</nav>")]
    assert 'aria-current="page">Overview</a>' in nav
    for name in ("exception_list", "review_list", "notification_search", "source_list"):
        assert reverse(name) in nav
    assert reverse("user_list") not in nav
    assert reverse("preferences") in content
    _, content = get(client, admin_user)
    assert reverse("user_list") in content


def test_it_costs_a_fixed_number_of_queries(
    client, viewer, week, shop, django_assert_max_num_queries
):
    client.force_login(viewer)
    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(reverse("home")).status_code == 200

    # More sources, more notifications and more exceptions: still the same queries.
    for n in range(5):
        source = save_source(slug=f"extra-{n}", kind="json", name=f"Extra {n}").source
        post(source, event(f"x{n}", "delivered", week - timedelta(hours=n)))
        silence(source, week)
    refresh_notification_counts()  # and read from the rollup, as when the worker runs
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(reverse("home"))
    assert len(response.context["o"].by_source) == 7


def test_its_links_are_filters_the_queue_understands(client, reviewer, week, json_source):
    team = Team.objects.create(name="Billing")
    now = timezone.now()
    FailureGroup.objects.create(
        kind=Kind.DELIVERY_FAILURE, title="x", team=team, first_seen=now, last_seen=now
    )
    FailureGroup.objects.create(kind=Kind.LATE, title="y", first_seen=now, last_seen=now)
    _, content = get(client, reviewer)

    queue = reverse("exception_list")
    links = set(re.findall(rf'href="({re.escape(queue)}\?[^"]+)"', content))
    assert {f"{queue}?owner=unowned", f"{queue}?source={json_source.pk}&kind=delivery_failure"} <= {
        html.unescape(link) for link in links
    }
    for link in links:
        response = client.get(html.unescape(link))
        assert response.status_code == 200, link
        assert "errorlist" not in response.content.decode(), link
