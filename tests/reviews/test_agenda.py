"""Building the agenda: the plain functions, without HTTP."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign, merge, set_status
from notifwatch.failures.models import AgendaReason, Review, Status
from notifwatch.failures.reviews import (
    build_agenda,
    decide,
    finish_review,
    start_review,
    week_start,
)
from tests.reviews.data import ago, bounces, created, silence


def agenda_of(review: Review) -> list[tuple[int, str]]:
    return list(review.items.order_by("position").values_list("group_id", "reason_on_agenda"))


def test_it_puts_each_reason_on_the_first_agenda_in_order(reviewer, week):
    review, created_now = start_review(reviewer)

    assert created_now
    assert agenda_of(review) == [
        (week.regressed.pk, AgendaReason.REGRESSED),
        (week.silent.pk, AgendaReason.SILENT_SOURCE),
        (week.new.pk, AgendaReason.NEW),
        (week.grown.pk, AgendaReason.GROWN),
        (week.unowned.pk, AgendaReason.UNOWNED),
    ]
    assert list(review.items.values_list("position", flat=True)) == [1, 2, 3, 4, 5]


def test_it_leaves_out_quiet_barely_grown_and_snoozed_exceptions(reviewer, week):
    review, _ = start_review(reviewer)
    on_agenda = {group_id for group_id, _ in agenda_of(review)}
    assert not on_agenda & {week.quiet.pk, week.steady.pk, week.snoozed.pk}


def test_it_says_why_each_is_on_the_agenda(reviewer, week):
    review, _ = start_review(reviewer)
    details = dict(review.items.values_list("reason_on_agenda", "reason_detail"))
    assert details == {
        "regressed": "Came back after it was marked resolved.",
        "silent_source": "Billing sender has been quiet in the last 7 days: its own failures "
        "would go unseen.",
        "new": "New in the last 7 days.",
        "grown": "Grew from 4 to 6 occurrences (+50%) in the last 7 days.",
        "unowned": "Still has no owner.",
    }


def test_it_lists_each_exception_once_under_its_most_pressing_reason(reviewer, json_source, teams):
    # New and unowned and silent, all at once.
    quiet_source = silence(json_source, ago(hours=3))
    # Regressed and unowned.
    back = created(bounces(json_source, "password_reset", 1, ago(days=20)), ago(days=20))
    set_status(back, Status.RESOLVED)
    bounces(json_source, "password_reset", 1, ago(days=1), first=1)

    review, _ = start_review(reviewer)

    assert agenda_of(review) == [
        (back.pk, AgendaReason.REGRESSED),
        (quiet_source.pk, AgendaReason.SILENT_SOURCE),
    ]


def test_it_orders_each_reason_by_customers_not_reached(reviewer, json_source):
    few = bounces(json_source, "order_confirmation", 1, ago(days=1))
    many = bounces(json_source, "invoice", 4, ago(days=1))
    some = bounces(json_source, "renewal_notice", 2, ago(days=1))

    review, _ = start_review(reviewer)

    assert [group_id for group_id, _ in agenda_of(review)] == [many.pk, some.pk, few.pk]


def test_it_counts_growth_of_ten_occurrences_even_when_the_share_is_small(reviewer, json_source):
    big = created(bounces(json_source, "invoice", 50, ago(days=20)), ago(days=20))
    assign(big, team=None, assignee=reviewer)
    bounces(json_source, "invoice", 10, ago(days=1), first=50)  # +20%, but ten more customers

    review, _ = start_review(reviewer)

    (item,) = review.items.all()
    assert (item.group_id, item.reason_on_agenda) == (big.pk, AgendaReason.GROWN)
    assert item.reason_detail == "Grew from 50 to 60 occurrences (+20%) in the last 7 days."


def test_it_looks_back_to_the_last_review_and_carries_over_what_it_left_undecided(
    reviewer, json_source, teams
):
    left = created(bounces(json_source, "invoice", 2, ago(days=9)), ago(days=9))
    handled = created(bounces(json_source, "renewal_notice", 1, ago(days=9)), ago(days=9))
    last_week, _ = start_review(reviewer, now=ago(days=7))
    assert agenda_of(last_week) == [(left.pk, "new"), (handled.pk, "new")]
    decide(last_week.items.get(group=handled), "assign", team=teams["Billing"], actor=reviewer)
    finish_review(last_week, actor=reviewer)

    fresh = bounces(json_source, "welcome_email", 2, ago(days=1))
    review, _ = start_review(reviewer)

    assert agenda_of(review) == [
        (fresh.pk, AgendaReason.NEW),
        (left.pk, AgendaReason.CARRIED_OVER),  # still unowned too: carried over says more
    ]
    carried = review.items.get(group=left)
    assert carried.reason_detail.startswith("Not decided in the review of ")
    assert carried.reason_detail.endswith(": carried over.")
    # "New" now means since the last review started, not the last 7 days.
    assert review.items.get(group=fresh).reason_detail.startswith("New since the last review (")


def test_a_regressed_or_still_silent_exception_comes_back_even_when_decided(reviewer, week, teams):
    last_week, _ = start_review(reviewer, now=ago(days=7))
    for item in last_week.items.filter(group__in=[week.regressed, week.silent]):
        decide(item, "fix_requested", note="Look into it", actor=reviewer)
    finish_review(last_week, actor=reviewer)
    set_status(week.regressed, Status.RESOLVED, actor=reviewer)
    bounces(week.regressed.source, "password_reset", 1, ago(hours=2), first=3)

    review, _ = start_review(reviewer)

    assert agenda_of(review)[:2] == [
        (week.regressed.pk, AgendaReason.REGRESSED),
        (week.silent.pk, AgendaReason.SILENT_SOURCE),  # silent hours since that review
    ]


def test_it_carries_over_into_the_exception_a_merge_kept(reviewer, json_source):
    kept = created(bounces(json_source, "invoice", 2, ago(days=8)), ago(days=8))
    folded = created(bounces(json_source, "invoice_reminder", 1, ago(days=8)), ago(days=8))
    last_week, _ = start_review(reviewer, now=ago(days=6))
    finish_review(last_week, actor=reviewer)
    merge([folded], into=kept)
    assign(kept, team=None, assignee=reviewer)  # owned: only the carry-over brings it back

    review, _ = start_review(reviewer)

    assert agenda_of(review) == [(kept.pk, AgendaReason.CARRIED_OVER)]


def test_it_does_not_carry_over_what_was_closed_since(reviewer, json_source):
    group = bounces(json_source, "invoice", 2, ago(days=3))
    last_week, _ = start_review(reviewer, now=ago(days=2))
    finish_review(last_week, actor=reviewer)
    set_status(group, Status.ACCEPTED, actor=reviewer)

    review, _ = start_review(reviewer)

    assert agenda_of(review) == []


def test_it_records_who_started_the_review_in_the_audit_trail(reviewer, week):
    review, _ = start_review(reviewer)

    entry = AuditEntry.objects.get(action="review.started")
    assert (entry.actor, entry.target_type, entry.target_id) == (
        reviewer,
        "failures.review",
        str(review.pk),
    )
    assert entry.new["items"] == 5
    assert entry.new["reasons"] == {
        "regressed": 1,
        "silent_source": 1,
        "new": 1,
        "grown": 1,
        "unowned": 1,
    }
    assert (review.started_by, review.week_start) == (reviewer, week_start(review.started_at))


def test_it_resumes_an_unfinished_review_instead_of_starting_another(reviewer, admin_user, week):
    review, _ = start_review(reviewer, now=ago(days=8))

    again, created_now = start_review(admin_user)

    assert (again, created_now) == (review, False)
    assert Review.objects.count() == 1
    assert AuditEntry.objects.filter(action="review.started").count() == 1


def test_the_database_refuses_two_unfinished_reviews_of_one_week(reviewer, db):
    monday = date(2025, 3, 10)
    Review.objects.create(week_start=monday, started_by=reviewer, started_at=ago())
    with pytest.raises(IntegrityError):
        Review.objects.create(week_start=monday, started_by=reviewer, started_at=ago())


def test_a_week_starts_on_monday():
    friday = datetime(2025, 3, 14, 16, 0, tzinfo=UTC)
    assert week_start(friday) == date(2025, 3, 10)
    assert week_start(friday - timedelta(days=4)) == date(2025, 3, 10)


def test_build_agenda_is_a_plain_function(reviewer, week):
    entries = build_agenda(ago(), previous=None)
    assert [(e.group.pk, e.reason) for e in entries][:2] == [
        (week.regressed.pk, "regressed"),
        (week.silent.pk, "silent_source"),
    ]
