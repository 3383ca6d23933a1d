import json
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.deliveries.models import Notification
from notifwatch.failures.actions import add_note, assign, merge, set_status, snooze
from notifwatch.failures.detection import (
    CAUSE_TIMEOUT,
    CAUSE_TWO_WORKERS,
    CAUSE_UNKNOWN,
    detect_mapping_breaks,
    detect_rejected_webhooks,
    detect_shared_recipients,
)
from notifwatch.failures.grouping import record_problems
from notifwatch.failures.models import FailureGroup, Kind, OwnerRule, Status
from notifwatch.failures.reasons import reason_by_key
from notifwatch.failures.views import occurrence_chart
from notifwatch.ingest.importer import import_path
from notifwatch.ingest.models import Outcome, RawEvent, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw
from tests.exceptions.data import BOUNCE_MESSAGE, event, record_failures, send, simple_problem


def page(client, group: FailureGroup) -> str:
    response = client.get(reverse("exception_detail", args=[group.pk]))
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_it_puts_the_readable_reason_first_and_the_raw_text_beside_it(client, viewer, bounced):
    reason = reason_by_key(bounced.reason_key)
    client.force_login(viewer)

    content = page(client, bounced)

    sentence = content.index(reason.sentence)
    assert sentence < content.index(reason.action) < content.index(BOUNCE_MESSAGE)
    assert content.index(BOUNCE_MESSAGE) < content.index("customers not reached at all")
    assert "Whoever keeps the customer's contact details (CRM, billing or support)" in content
    assert "Retrying helps?</dt><dd>No — it is permanent" in content
    assert "SendGrid said, verbatim" in content
    assert f"550 — {BOUNCE_MESSAGE}" in content


def test_it_shows_the_impact_in_customers(client, viewer, bounced):
    client.force_login(viewer)
    content = page(client, bounced)
    assert (
        '<div class="stat-n">2</div>\n    <div class="stat-l">customers not reached at all'
        in content
    )
    assert '<div class="stat-n">1</div>\n    <div class="stat-l">reached anyway' in content
    assert '<div class="stat-n">3</div>\n    <div class="stat-l">customers affected' in content
    assert (
        '3</div>\n    <div class="stat-l">occurrences · 0 this week, 0 the week before' in content
    )
    assert "Fri Mar 14, 10:00" in content and "Fri Mar 14, 10:10" in content


def test_it_counts_this_week_and_last_week(client, viewer, db):
    now = timezone.now()
    when = [now - timedelta(days=d) for d in (1, 2, 9)]
    problems = [simple_problem("late:x", i, occurred_at=at) for i, at in enumerate(when)]
    (pk,) = record_problems(problems, rule="late")
    client.force_login(viewer)
    assert "3 occurrences · 2 this week, 1 the week before" in page(
        client, FailureGroup.objects.get(pk=pk)
    ).replace('</div>\n    <div class="stat-l">', " ")


def test_it_links_each_sample_to_its_notification_timeline(client, viewer, bounced):
    client.force_login(viewer)
    content = page(client, bounced)
    failed = Notification.objects.filter(counts_as_failure=True).order_by("-settled_at")
    links = [reverse("notification_detail", args=[n.pk]) for n in failed]
    positions = [
        content.index(f'<a href="{link}">Order confirmation · Email</a>') for link in links
    ]
    assert positions == sorted(positions)  # newest first
    assert "All 3, newest first" in content


def test_it_shows_at_most_twenty_samples(client, viewer, json_source):
    send(
        json_source,
        *[
            event(f"k{i}", "bounced", f"2025-03-14T10:{i:02d}:00Z", f"cus_{i}", code="550")
            for i in range(25)
        ],
    )
    group = record_failures(Notification.objects.all())
    client.force_login(viewer)
    content = page(client, group)
    assert "The newest 20 of 25, newest first" in content
    assert content.count("Order confirmation · Email</a>") == 20
    assert "Mar 14, 10:24:00" in content and "Mar 14, 10:04:00" not in content


@pytest.fixture
def mapping_break(inhouse_source, tmp_path) -> FailureGroup:
    """The sender renamed `ts` upstream: three lines quarantined, one mapping break."""
    renamed = tmp_path / "renamed.jsonl"
    lines = [
        {
            "timestamp": f"2025-03-14T10:0{i}:00Z",
            "event": "notification.attempt",
            "idempotency_key": f"inv-{i}",
            "template": "invoice_ready",
            "status": "delivered",
            "recipient": {"email": "leo@example.com"},
        }
        for i in range(3)
    ]
    renamed.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    import_path(inhouse_source, str(renamed))
    detect_mapping_breaks(timezone.now() - timedelta(days=8))
    return FailureGroup.objects.get()


def test_it_explains_a_mapping_break_and_links_the_mapping(client, viewer, mapping_break):
    client.force_login(viewer)
    raw = RawEvent.objects.filter(outcome=Outcome.QUARANTINED).order_by("pk").last()

    content = page(client, mapping_break)

    assert "Events from Inhouse could not be read: ts missing (maps to occurred_at)." in content
    assert "in 3 of the 3 events from inhouse since it began</h1>" in content
    assert "Fix the source's field mapping (or the sender), then reprocess" in content
    assert "Field</dt><dd>ts</dd>" in content
    assert f'<a href="{reverse("source_detail", args=["inhouse"])}#mapping">' in content
    # The raw text is our own ingest's reason; samples open the raw events.
    assert f"Raw event #{raw.pk}, verbatim" in content
    assert (
        f'<a href="{reverse("raw_event_detail", args=[raw.pk])}">Raw event #{raw.pk}</a>' in content
    )
    assert "Our team — the sending setup" in content


@pytest.fixture
def shared_address(json_source) -> FailureGroup:
    """Two customer records with one email address, found by the identity rule."""
    send(
        json_source,
        event("w-1", "delivered", "2025-03-14T09:00:00Z", "cus_100", recipient="sam@example.com"),
        event("w-2", "delivered", "2025-03-14T09:01:00Z", "cus_200", recipient="sam@example.com"),
    )
    detect_shared_recipients(datetime(2025, 3, 1, tzinfo=UTC))
    return FailureGroup.objects.get()


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_it_masks_the_shared_address_without_personal_data(client, request, role, shared_address):
    client.force_login(request.getfixturevalue(role))
    content = page(client, shared_address)
    assert "One address is used by several customer ids." in content
    assert "sam@example.com" not in content
    assert "Shared address</dt><dd>s•••@example.com</dd>" in content
    assert "Customer ids</dt><dd>cus_100, cus_200</dd>" in content
    assert "Whoever keeps the customer's contact details" in content


def test_it_shows_reviewers_the_address_in_the_samples(client, reviewer, shared_address):
    client.force_login(reviewer)
    content = page(client, shared_address)
    # The exception itself names the address masked (as detection stored it); the samples,
    # which reviewers open to fix the records, show it whole.
    assert "Shared address</dt><dd>s•••@example.com</dd>" in content
    assert content.count('<td class="id">sam@example.com</td>') == 2


def test_it_masks_numbers_in_the_provider_text_for_viewers(client, viewer, reviewer, imported):
    failed = imported("03_missing_customer_id.jsonl").filter(counts_as_failure=True)
    group = record_failures(failed)
    client.force_login(viewer)
    content = page(client, group)
    assert "+14155550118" not in content
    assert "'To' number +1•••••0118 is not a valid mobile number" in content
    client.force_login(reviewer)
    assert "'To' number +14155550118 is not a valid mobile number" in page(client, group)


@pytest.mark.parametrize(
    ("kind", "detail", "sentence"),
    [
        (
            Kind.LATE,
            {"window_seconds": 900},
            "Order confirmation emails got no final status within 15 minutes.",
        ),
        (
            Kind.DUPLICATE_SEND,
            {"cause": CAUSE_TIMEOUT, "how": ["two keys"]},
            "Customers got the same notification more than once: retried after a timeout "
            "although the first attempt had gone through.",
        ),
        (
            Kind.DUPLICATE_SEND,
            {"cause": CAUSE_TWO_WORKERS, "how": ["two keys"]},
            "Make sure one worker claims each notification",
        ),
        (
            Kind.DUPLICATE_SEND,
            {"cause": CAUSE_UNKNOWN, "how": ["two channels", "two keys"]},
            "Sent under</dt><dd>two channels and two keys",
        ),
        (
            Kind.SILENCE,
            {
                "mode": "provider_stopped_reporting",
                "source": "billing",
                "last_seen": "2025-03-11T14:00:00+00:00",
                "observed": 0,
                "expected": 42.0,
                "hours": 3,
                "sent_meanwhile": 120,
            },
            "Billing sender still sends, but has stopped reporting delivery outcomes.",
        ),
        (
            Kind.SILENCE,
            {"mode": "stopped_sending", "observed": 2, "expected": 40.5, "hours": 3},
            "Last 3 hours</dt><dd>2 events, about 40.5 expected",
        ),
        (
            Kind.SILENCE,
            {"mode": "purpose_stopped", "observed": 0, "expected": 12.0, "hours": 4},
            "Billing sender stopped sending order confirmation while it normally would.",
        ),
        (
            Kind.IDENTITY,
            {"problem": "missing_customer_id"},
            "Notifications arrive without a stable customer id",
        ),
        (
            Kind.IDENTITY,
            {"problem": "unmatched_callback"},
            "Delivery reports arrive that match no notification the sender reported.",
        ),
    ],
)
def test_it_explains_each_kind_in_words(client, viewer, json_source, kind, detail, sentence):
    problem = simple_problem(
        f"{kind}:1",
        9,
        kind=kind,
        source_id=json_source.pk,
        channel="email",
        purpose="order_confirmation",
        detail=detail,
    )
    (pk,) = record_problems([problem], rule=f"{kind} rule")
    client.force_login(viewer)
    content = page(client, FailureGroup.objects.get(pk=pk))
    assert sentence in content
    assert "No provider text: this exception comes from what we observed" in content
    if kind == Kind.SILENCE:
        assert "A silent hour" in content


def test_it_explains_rejected_webhooks_and_links_the_source(client, viewer, json_source):
    for n in range(3):
        store_raw(
            json_source,
            Transport.WEBHOOK,
            f'{{"n": {n}}}'.encode(),
            outcome=Outcome.REJECTED,
            reason="signature mismatch",
        )
    detect_rejected_webhooks(timezone.now() - timedelta(days=8))
    client.force_login(viewer)

    content = page(client, FailureGroup.objects.get())

    assert (
        "Calls to Billing sender's endpoint were refused: bad signature or credentials." in content
    )
    assert "Usually a rotated secret" in content
    assert "Last reason</dt><dd>signature mismatch" in content
    assert (
        f'<a href="{reverse("source_detail", args=["billing"])}">Billing sender source page'
        in content
    )
    assert "Raw event #" in content and "signature mismatch</p>" in content


def test_it_lists_unexplained_detail_as_facts(client, viewer, db):
    problem = simple_problem("x", 1, detail={"likely_worker": "notif-worker-3", "nested": {"a": 1}})
    (pk,) = record_problems([problem], rule="r")
    client.force_login(viewer)
    content = page(client, FailureGroup.objects.get(pk=pk))
    assert "Likely worker</dt><dd>notif-worker-3" in content
    assert "nested" not in content


def test_it_shows_the_owner_status_and_snooze(client, viewer, reviewer, bounced, teams):
    assign(bounced, team=teams["Billing"], assignee=reviewer, actor=reviewer)
    until = timezone.make_aware(timezone.datetime(2031, 5, 20))
    snooze(bounced, until, wake_at_occurrences=40, actor=reviewer)
    client.force_login(viewer)
    content = page(client, bounced)
    assert "Team</dt><dd>Billing" in content
    assert "Person</dt><dd>rita" in content
    assert (
        '<span class="badge x-snoozed">Snoozed</span> <span class="small">until Tue May 20, or until it reaches 40 occurrences'
        in content
    )
    assert "Unowned — every exception needs one owner." not in content


def test_it_flags_an_unowned_exception(client, viewer, bounced):
    client.force_login(viewer)
    assert "Unowned — every exception needs one owner." in page(client, bounced)


def test_it_shows_the_full_history_with_people_and_rules(client, viewer, reviewer, json_source):
    crm = Team.objects.create(name="CRM admins")
    rule = OwnerRule.objects.create(team=crm, fix_owner="recipient_data")
    from tests.exceptions.data import bounced_order_confirmations

    group = bounced_order_confirmations(json_source)
    assign(group, assignee=reviewer, actor=reviewer)
    add_note(group, "Asked CRM to fix sam@example.com", actor=reviewer)
    set_status(group, Status.RESOLVED, actor=reviewer, comment="Addresses corrected")
    client.force_login(viewer)

    content = page(client, group)

    history = content[content.index('id="history"') :]
    expected = [
        "System · delivery failures</strong> — Opened",
        f"System · owner rule {rule.pk} (delivery failures)</strong> — Assigned",
        "Team: none → CRM admins",
        "Status: New → Assigned",
        "rita</strong> — Assigned",
        "Assignee: nobody → rita",
        "rita</strong> — Added a note",
        "Asked CRM to fix s•••@example.com",  # notes are masked for viewers too
        "rita</strong> — Resolved",
        "Status: Assigned → Resolved",
        "Addresses corrected",
    ]
    positions = [history.index(text) for text in expected]
    assert positions == sorted(positions)


def test_it_points_a_merged_exception_at_the_kept_one(client, reviewer, db):
    record_problems([simple_problem("a", 1), simple_problem("b", 2)], rule="r")
    kept, gone = FailureGroup.objects.order_by("pk")
    merge([gone], kept, actor=reviewer)
    client.force_login(reviewer)

    content = page(client, gone)

    assert f'Merged into <a href="{reverse("exception_detail", args=[kept.pk])}">' in content
    assert "rita</strong> — Merged into another exception" in content
    assert reverse("exception_action", args=[gone.pk]) not in content  # decide on the kept one
    assert "rita</strong> — Took in another exception" in page(client, kept)


@pytest.mark.parametrize("role", ["admin_user", "reviewer"])
def test_it_offers_the_decision_forms_to_reviewers_and_admins(client, request, role, bounced):
    client.force_login(request.getfixturevalue(role))
    content = page(client, bounced)
    action = reverse("exception_action", args=[bounced.pk])
    assert content.count(f'method="post" action="{action}"') == 4
    assert content.count(f'hx-post="{action}" hx-target="#owner"') == 4
    for value in ("assign", "status", "snooze", "note"):
        assert f'<input type="hidden" name="action" value="{value}">' in content


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_it_shows_read_only_roles_no_forms(client, request, role, bounced):
    client.force_login(request.getfixturevalue(role))
    content = page(client, bounced)
    assert reverse("exception_action", args=[bounced.pk]) not in content
    assert "Only reviewers and admins can assign or decide on an exception." in content


def test_it_answers_404_for_an_unknown_exception(client, viewer, db):
    client.force_login(viewer)
    assert client.get(reverse("exception_detail", args=[999])).status_code == 404


def test_it_refuses_users_without_a_role(client, no_role_user, bounced):
    client.force_login(no_role_user)
    assert client.get(reverse("exception_detail", args=[bounced.pk])).status_code == 403


def test_it_escapes_what_sources_sent(client, reviewer, json_source):
    script = "<script>alert(1)</script>"
    send(
        json_source, event("k", "bounced", "2025-03-14T10:00:00Z", "c", code=script, message=script)
    )
    group = record_failures(Notification.objects.all())
    FailureGroup.objects.filter(pk=group.pk).update(title=script, detail={"note": script})
    client.force_login(reviewer)
    response = client.get(reverse("exception_detail", args=[group.pk]))
    assert script.encode() not in response.content
    assert b"&lt;script&gt;" in response.content


def test_it_charts_the_occurrences_of_the_last_14_days(client, viewer, db):
    now = timezone.now()
    ages = [timedelta(hours=1), timedelta(hours=2), timedelta(days=3), timedelta(days=20)]
    (pk,) = record_problems(
        [simple_problem("c", i, occurred_at=now - age) for i, age in enumerate(ages)],
        rule="tests",
    )
    group = FailureGroup.objects.get(pk=pk)

    chart = occurrence_chart(group, now)

    assert [s.total for s in chart.series] == [3]  # the one 20 days ago is off the chart
    assert len(chart.bars) == 4 * 13 + timezone.localtime(now).hour // 6 + 1
    client.force_login(viewer)
    page = client.get(f"/exceptions/{pk}/").content.decode()
    assert "Occurrences, per 6 hours, last 14 days" in page
    assert '<svg class="bars"' in page


# A megabyte planted in a field by anyone with a source token: one run of address characters
# (quadratic for the old masking: the page ran a minute, then its worker was killed).
PLANTED = "for ana.ruiz@example.com: " + "+1" * 500_000


@pytest.fixture
def planted(json_source) -> FailureGroup:
    """A quarantined event whose reason quotes a megabyte, and its mapping-break exception."""
    body = event("k-1", "bounced", "2025-03-14T10:00:00Z", "cus_1") | {"attempt": "x"}
    raw = process_raw_event(store_raw(json_source, Transport.API, json.dumps(body).encode()))
    assert raw.outcome == Outcome.QUARANTINED
    # As long as a reason got before they were cut when stored: pages must not depend on that.
    problem = {"index": None, "field": "attempt", "message": PLANTED}
    RawEvent.objects.filter(pk=raw.pk).update(reason=PLANTED, problems=[problem])
    detect_mapping_breaks(timezone.now() - timedelta(days=8))
    return FailureGroup.objects.get()


def test_it_shows_a_viewer_the_masked_start_of_a_megabyte_reason(client, viewer, planted):
    # The exception keeps a readable head of the pattern; the raw text and sample quote it whole.
    assert len(planted.detail["pattern"]) == 300
    client.force_login(viewer)

    content = page(client, planted)

    assert "ana.ruiz@example.com" not in content
    # The raw text and the sample; the run is left out whole, not cut in two.
    assert content.count("for a•••@example.com: … [1,000,001 more characters not shown]") == 2
    assert "+1+1" not in content
    assert len(content) < 100_000


def test_it_shows_a_reviewer_the_start_of_a_megabyte_reason(client, reviewer, planted):
    client.force_login(reviewer)
    content = page(client, planted)
    assert "for ana.ruiz@example.com: +1+1+1" in content
    assert "more characters not shown]" in content
    assert len(content) < 100_000
