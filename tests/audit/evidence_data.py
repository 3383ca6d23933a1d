"""A week with a finished review, built through the real ingest and action functions."""

from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.audit.evidence import week_bounds
from notifwatch.failures.models import FailureGroup, GroupHistory
from notifwatch.failures.reviews import decide, finish_review, start_review, week_start
from tests.reviews.data import bounces

FORMULA = '=HYPERLINK("x")'
ADDRESS = "pat.doe@example.com"


def held_week(reviewer, source) -> SimpleNamespace:
    """This week: three exceptions, a review that decides two and carries one over.

    `old` bounced the week before and its creation was recorded then; it is on this week's
    agenda only because it is still unowned.
    """
    now = timezone.now()
    w = SimpleNamespace(now=now, monday=week_start(now))
    w.start, w.end = week_bounds(w.monday, timezone.get_current_timezone())
    # Inside this week and already past, whatever the day of the week the test runs on.
    mid = w.start + (now - w.start) / 2
    before = w.start - timedelta(days=2)
    w.billing = Team.objects.create(name="Billing")

    # Its creation happened last week: the audit trail (append-only, so written then, on a
    # clock set back) and its history say so.
    with mock.patch("django.utils.timezone.now", return_value=before):
        w.old = bounces(source, "invoice", 2, before)
    GroupHistory.objects.filter(group=w.old).update(at=before)
    FailureGroup.objects.filter(pk=w.old.pk).update(created_at=before)

    w.new = bounces(source, "order_confirmation", 3, mid)
    w.left = bounces(source, "password_reset", 1, mid)

    w.review, _ = start_review(reviewer)
    items = {item.group_id: item for item in w.review.items.all()}
    decide(
        items[w.new.pk],
        "assign",
        team=w.billing,
        assignee=reviewer,
        note=f"Customer {ADDRESS} complained",
        actor=reviewer,
    )
    decide(items[w.old.pk], "accept", note=FORMULA, actor=reviewer)
    finish_review(w.review, actor=reviewer, note="Two decided, one for next week.")
    w.review.refresh_from_db()
    for group in (w.old, w.new, w.left):
        group.refresh_from_db()
    return w
