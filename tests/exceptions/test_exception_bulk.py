import re
from datetime import UTC, datetime, timedelta
from html import unescape
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.models import AuditEntry
from notifwatch.failures import bulk, tasks, views
from notifwatch.failures.actions import set_status
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, GroupHistory, HistoryKind, Kind, Status
from tests.exceptions.data import simple_problem

URL = reverse("exception_bulk")


def make(name: str, occurrences: int = 1, *, kind: str = Kind.SILENCE) -> FailureGroup:
    problems = [
        simple_problem(
            name,
            h,
            kind=kind,
            title=f"Exception {name}",
            occurred_at=datetime(2025, 3, 14, h, tzinfo=UTC),
        )
        for h in range(occurrences)
    ]
    (pk,) = record_problems(problems, rule="tests")
    return FailureGroup.objects.get(pk=pk)


def hidden_fields(content: str) -> list[tuple[str, str]]:
    """What the confirmation form posts back, as a browser would send it."""
    button = content.index('name="confirm"')
    form = content[content.rindex("<form", 0, button) : button]
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    return [(name, unescape(value)) for name, value in pairs if name != "csrfmiddlewaretoken"]


def confirm(client, content: str, **extra):
    data: dict[str, list[str]] = {}
    for name, value in hidden_fields(content):
        data.setdefault(name, []).append(value)
    for name, value in extra.items():
        data[name] = [value]
    return client.post(URL, {**data, "confirm": "1"})


def statuses() -> dict[str, str]:
    return {g.title.removeprefix("Exception "): g.status for g in FailureGroup.objects.all()}


@pytest.fixture
def late_and_silence(db):
    """Eleven late exceptions (impact order: late-10 first) and one silence."""
    late = [make(f"late-{n:02d}", occurrences=1 + n % 4, kind=Kind.LATE) for n in range(11)]
    return late, make("silence")


# --- On a selection ------------------------------------------------------------------------------


def test_it_shows_the_ticked_exceptions_before_changing_anything(
    client, reviewer, late_and_silence
):
    late, _ = late_and_silence
    client.force_login(reviewer)

    response = client.post(
        URL,
        {
            "verb": "resolve",
            "scope": "selected",
            "ids": [late[0].pk, late[1].pk],
            "filters": "status=open",
        },
    )

    content = unescape(response.content.decode())
    assert response.status_code == 200
    assert "Mark resolved: 2 exceptions" in content
    assert "The 2 you ticked" in content
    assert "Exception late-00" in content and "Exception late-01" in content
    assert "Exception late-02" not in content
    assert set(statuses().values()) == {Status.NEW}


def test_it_resolves_the_ticked_exceptions_once_confirmed(client, reviewer, late_and_silence):
    late, _ = late_and_silence
    client.force_login(reviewer)
    ids = [late[0].pk, late[1].pk]
    step = client.post(
        URL, {"verb": "resolve", "scope": "selected", "ids": ids, "filters": "kind=late"}
    ).content.decode()

    response = confirm(client, step, comment="Fixed the template")

    assert response.status_code == 302
    assert response["Location"] == "/exceptions/?kind=late&status=open"
    assert [s for s in statuses().values()].count(Status.RESOLVED) == 2
    for group in late[:2]:
        entry = GroupHistory.objects.filter(group=group).last()
        assert (entry.kind, entry.actor) == (HistoryKind.STATUS, reviewer)
        assert entry.comment == "Bulk change of 2: Fixed the template"
    audit = AuditEntry.objects.get(action="exception.bulk_resolve")
    assert (audit.actor, audit.target_type, audit.target_id) == (
        reviewer,
        "exception_set",
        "selection",
    )
    assert audit.new["filter"] == "kind=late&status=open"
    assert audit.new["count"] == 2 and audit.new["ids"] == sorted(ids)
    assert audit.detail == "Fixed the template"
    page = client.get(response["Location"]).content.decode()
    assert "Marked 2 exceptions resolved." in page


def test_it_leaves_ticked_exceptions_that_no_longer_match_the_filter(
    client, reviewer, late_and_silence
):
    late, silence = late_and_silence
    client.force_login(reviewer)
    ids = [late[0].pk, silence.pk]

    step = client.post(
        URL, {"verb": "accept", "scope": "selected", "ids": ids, "filters": "kind=late"}
    ).content.decode()

    assert "Accept as expected: 1 exception" in step
    assert "The 2 you ticked — 1 of them still match the filters" in step
    confirm(client, step)
    assert statuses()["silence"] == Status.NEW
    assert statuses()["late-00"] == Status.ACCEPTED


# --- On the whole filtered set ------------------------------------------------------------------


def test_it_shows_the_exact_count_and_the_first_ten_of_the_filtered_set(
    client, reviewer, late_and_silence
):
    client.force_login(reviewer)

    response = client.post(URL, {"verb": "accept", "scope": "all", "filters": "kind=late"})

    content = unescape(response.content.decode())
    assert "Accept as expected: 11 exceptions" in content
    assert "Every exception matching the filters" in content
    assert (
        "Kind: <strong>Late</strong> · Status: <strong>Open (new, assigned, regressed)</strong>"
        in content
    )
    assert "The first 10 of 11, biggest impact first" in content
    sample = re.findall(r"#\d+ Exception (late-\d+)</a>", content)
    expected = [
        g.title.removeprefix("Exception ")
        for g in FailureGroup.objects.filter(kind=Kind.LATE).order_by(
            "-customers_not_reached", "-occurrences", "-id"
        )[:10]
    ]
    assert sample == expected
    assert "Exception silence" not in content
    assert ("expected", "11") in hidden_fields(content)


def test_it_applies_to_every_matching_exception_past_one_chunk(
    client, reviewer, late_and_silence, monkeypatch
):
    monkeypatch.setattr(bulk, "CHUNK_SIZE", 3)
    client.force_login(reviewer)
    step = client.post(URL, {"verb": "accept", "scope": "all", "filters": "kind=late"})

    response = confirm(client, step.content.decode())

    assert response.status_code == 302
    changed = statuses()
    assert [changed[f"late-{n:02d}"] for n in range(11)] == [Status.ACCEPTED] * 11
    assert changed["silence"] == Status.NEW
    assert AuditEntry.objects.filter(action="exception.status", actor=reviewer).count() == 11
    audit = AuditEntry.objects.get(action="exception.bulk_accept")
    assert audit.new["filter"] == "kind=late&status=open"
    assert audit.new["count"] == 11 and audit.new["changed"] == 11
    assert audit.target_type == "exception_set" and audit.target_id == "filter"
    assert "ids" not in audit.new


def test_it_asks_again_when_the_count_changed_since_the_confirmation(
    client, reviewer, late_and_silence
):
    client.force_login(reviewer)
    step = client.post(URL, {"verb": "resolve", "scope": "all", "filters": "kind=late"})
    make("late-new", kind=Kind.LATE)  # detection found another one meanwhile

    response = confirm(client, step.content.decode())

    content = unescape(response.content.decode())
    assert response.status_code == 200
    assert "The matching exceptions changed since you looked: 11 then, 12 now." in content
    assert "Mark resolved: 12 exceptions" in content
    assert Status.RESOLVED not in statuses().values()
    assert not AuditEntry.objects.filter(action="exception.bulk_resolve").exists()

    # Confirming the new count applies it.
    assert confirm(client, content).status_code == 302
    assert list(statuses().values()).count(Status.RESOLVED) == 12


def test_it_asks_again_when_the_set_changed_but_not_its_size(client, reviewer, late_and_silence):
    late, _ = late_and_silence
    client.force_login(reviewer)
    step = client.post(URL, {"verb": "resolve", "scope": "all", "filters": "kind=late"})
    set_status(late[3], Status.ACCEPTED)  # someone else took one out...
    make("late-new", kind=Kind.LATE)  # ...and another came in

    content = unescape(confirm(client, step.content.decode()).content.decode())

    assert "The matching exceptions changed since you looked: 11 then, 11 now." in content
    assert Status.RESOLVED not in statuses().values()


def test_it_refuses_a_confirmation_without_the_count_it_confirms(
    client, reviewer, late_and_silence
):
    client.force_login(reviewer)
    response = client.post(
        URL, {"verb": "resolve", "scope": "all", "filters": "kind=late", "confirm": "1"}
    )
    assert "Mark resolved: 11 exceptions" in response.content.decode()
    assert Status.RESOLVED not in statuses().values()


def test_it_refuses_filters_that_no_longer_validate(client, reviewer, late_and_silence):
    client.force_login(reviewer)
    response = client.post(URL, {"verb": "resolve", "scope": "all", "filters": "owner=99999"})
    content = response.content.decode()
    assert "These filters no longer work" in content
    assert 'name="confirm"' not in content
    assert Status.RESOLVED not in statuses().values()


def test_it_leaves_exceptions_already_in_that_state_alone(client, reviewer, late_and_silence):
    late, _ = late_and_silence
    set_status(late[0], Status.RESOLVED)
    client.force_login(reviewer)
    step = client.post(URL, {"verb": "resolve", "scope": "all", "filters": "kind=late&status=all"})
    assert "Mark resolved: 11 exceptions" in step.content.decode()
    before = GroupHistory.objects.filter(group=late[0]).count()

    response = confirm(client, step.content.decode())

    page = client.get(response["Location"]).content.decode()
    assert "Marked 10 exceptions resolved. 1 was already like that: left alone." in page
    assert GroupHistory.objects.filter(group=late[0]).count() == before


# --- The changes --------------------------------------------------------------------------------


def test_it_assigns_a_team_and_a_person_in_bulk(client, reviewer, viewer, teams, late_and_silence):
    client.force_login(reviewer)
    step = client.post(
        URL,
        {
            "verb": "assign",
            "team": teams["Billing"].pk,
            "assignee": viewer.pk,
            "scope": "all",
            "filters": "kind=late",
        },
    ).content.decode()
    assert "Assign to team Billing and person victor: 11 exceptions" in step

    confirm(client, step)

    late = FailureGroup.objects.filter(kind=Kind.LATE)
    assert {(g.team_id, g.assignee_id, g.status) for g in late} == {
        (teams["Billing"].pk, viewer.pk, Status.ASSIGNED)
    }
    audit = AuditEntry.objects.get(action="exception.bulk_assign")
    assert audit.new["team"] == {"id": teams["Billing"].pk, "name": "Billing"}
    assert audit.new["assignee"] == {"id": viewer.pk, "username": "victor"}


def test_it_snoozes_until_a_date_in_bulk(client, reviewer, late_and_silence):
    client.force_login(reviewer)
    until = timezone.localdate() + timedelta(days=10)
    step = client.post(
        URL, {"verb": "snooze", "until": until.isoformat(), "scope": "all", "filters": "kind=late"}
    ).content.decode()

    confirm(client, step)

    snoozed = FailureGroup.objects.filter(kind=Kind.LATE)
    assert {g.status for g in snoozed} == {Status.SNOOZED}
    assert {timezone.localtime(g.snoozed_until).date() for g in snoozed} == {until}
    audit = AuditEntry.objects.get(action="exception.bulk_snooze")
    assert audit.new["until"].startswith(until.isoformat())


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"verb": "snooze", "scope": "all"}, "Pick the date it should come back."),
        ({"verb": "snooze", "scope": "all", "until": "2020-01-01"}, "Pick a date after today."),
        ({"verb": "assign", "scope": "all"}, "Choose a team, a person, or both."),
        ({"verb": "resolve", "scope": "selected"}, "Tick at least one exception"),
        ({"verb": "explode", "scope": "all"}, "Select a valid choice."),
        ({"verb": "resolve", "scope": "selected", "ids": "x"}, "Pick exceptions from the list."),
    ],
)
def test_it_explains_what_is_missing(client, reviewer, late_and_silence, data, error):
    client.force_login(reviewer)
    response = client.post(URL, {"filters": "kind=late", **data})
    content = response.content.decode()
    assert response.status_code == 200
    assert error in content
    assert 'name="confirm"' not in content
    assert '<input type="hidden" name="filters" value="kind=late&amp;status=open">' in content
    assert Status.NEW in statuses().values() and len(set(statuses().values())) == 1


# --- htmx -----------------------------------------------------------------------------------------


def test_it_swaps_the_confirmation_into_the_queue_with_htmx(client, reviewer, late_and_silence):
    client.force_login(reviewer)
    response = client.post(
        URL, {"verb": "resolve", "scope": "all", "filters": "kind=late"}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="queue" class="panel bulk-confirm"')
    assert "<html" not in content
    assert 'hx-post="/exceptions/bulk/" hx-target="#queue" hx-swap="outerHTML"' in content
    assert 'hx-get="/exceptions/?kind=late&amp;status=open" hx-target="#queue"' in content


def test_it_shows_the_refreshed_queue_after_applying_with_htmx(client, reviewer, late_and_silence):
    client.force_login(reviewer)
    step = client.post(URL, {"verb": "resolve", "scope": "all", "filters": "kind=late"})
    data: dict[str, list[str]] = {}
    for name, value in hidden_fields(step.content.decode()):
        data.setdefault(name, []).append(value)

    response = client.post(URL, {**data, "confirm": "1"}, HTTP_HX_REQUEST="true")

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<section id="queue"')
    assert "Marked 11 exceptions resolved." in content
    assert "No exceptions match these filters." in content
    assert response["HX-Push-Url"] == "/exceptions/?kind=late&status=open"


def test_the_queue_offers_both_scopes(client, reviewer, late_and_silence):
    client.force_login(reviewer)
    content = client.get(reverse("exception_list"), {"kind": "late"}).content.decode()
    assert '<input type="hidden" name="filters" value="kind=late&amp;status=open">' in content
    assert (
        '<button type="submit" name="scope" value="selected">Apply to ticked…</button>' in content
    )
    assert (
        '<button type="submit" name="scope" value="all">Apply to all 11 matching…</button>'
        in content
    )


# --- Who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "auditor", "no_role_user"])
def test_it_refuses_a_forged_bulk_change(client, request, role, late_and_silence):
    client.force_login(request.getfixturevalue(role))
    for data in (
        {"verb": "resolve", "scope": "all", "filters": "kind=late"},
        {
            "verb": "resolve",
            "scope": "all",
            "filters": "kind=late",
            "expected": "11",
            "confirm": "1",
        },
    ):
        assert client.post(URL, data).status_code == 403
    assert Status.RESOLVED not in statuses().values()
    assert not AuditEntry.objects.filter(action__startswith="exception.bulk_").exists()


def test_it_lets_admins_change_in_bulk(client, admin_user, late_and_silence):
    client.force_login(admin_user)
    step = client.post(URL, {"verb": "accept", "scope": "all", "filters": "kind=late"})
    assert confirm(client, step.content.decode()).status_code == 302
    assert list(statuses().values()).count(Status.ACCEPTED) == 11


def test_it_sends_anonymous_users_to_login(client, late_and_silence):
    response = client.post(URL, {"verb": "resolve", "scope": "all"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_answers_only_posts(client, reviewer):
    client.force_login(reviewer)
    assert client.get(URL).status_code == 405


def test_it_reads_the_filters_back_in_words(client, reviewer, viewer, teams, late_and_silence):
    client.force_login(reviewer)
    filters = f"owner={teams['Billing'].pk}&assignee={viewer.pk}&seen_from=2025-03-01&q=late"
    response = client.post(URL, {"verb": "resolve", "scope": "all", "filters": filters})
    content = unescape(response.content.decode())
    assert (
        "Text: <strong>late</strong> · Status: <strong>Open (new, assigned, regressed)</strong> · "
        "Owner (team): <strong>Billing</strong> · Person: <strong>victor</strong> · "
        "Last seen from: <strong>2025-03-01</strong>"
    ) in content
    assert "Mark resolved: 0 exceptions" in content
    assert "Nothing matches any more" in content and 'name="confirm"' not in content


# --- Large sets run in the worker ---------------------------------------------------------------


def test_a_large_set_is_changed_by_the_worker_and_recorded(
    client, reviewer, teams, late_and_silence, monkeypatch
):
    monkeypatch.setattr(views, "BACKGROUND_OVER", 5)
    enqueued = []
    real_task = tasks.apply_bulk_in_background
    monkeypatch.setattr(
        views,
        "apply_bulk_in_background",
        SimpleNamespace(enqueue=lambda *args: enqueued.append(args) or real_task.enqueue(*args)),
    )
    client.force_login(reviewer)
    step = client.post(
        URL,
        {"verb": "assign", "team": teams["CRM admins"].pk, "scope": "all", "filters": "kind=late"},
    )

    response = confirm(client, step.content.decode())

    assert response.status_code == 302
    assert len(enqueued) == 1  # handed over, not run inside the request
    notice = [m.message for m in response.wsgi_request._messages]
    assert notice == [
        "11 exceptions are being changed in the background (about a minute for 10,000). "
        "The audit trail records the bulk change when it is done."
    ]
    # The test settings run tasks at once; in production the worker does, moments later.
    late = FailureGroup.objects.filter(kind=Kind.LATE)
    assert {g.team.name for g in late} == {"CRM admins"}
    audit = AuditEntry.objects.get(action="exception.bulk_assign")
    assert audit.actor == reviewer and audit.new["count"] == 11
    assert audit.new["team"]["name"] == "CRM admins"


def test_a_background_change_whose_set_changed_meanwhile_changes_nothing(
    reviewer, late_and_silence
):
    late, _ = late_and_silence
    preview = bulk.preview("kind=late&status=open")
    set_status(late[0], Status.RESOLVED)  # after the confirmation, before the worker runs

    result = tasks.apply_bulk_in_background.enqueue(
        "kind=late&status=open",
        {"verb": "accept"},
        "",
        reviewer.pk,
        preview.count,
        preview.digest,
        None,
    ).return_value

    assert result == {"abandoned": True, "confirmed": 11, "found": 10}
    assert not FailureGroup.objects.filter(status=Status.ACCEPTED).exists()
    entry = AuditEntry.objects.get(action="exception.bulk_accept_abandoned")
    assert entry.actor == reviewer and entry.new["found"] == 10
