"""The overview's numbers, computed without HTTP."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.deliveries.models import Notification
from notifwatch.deliveries.overview import Tally, build_overview, share_text
from notifwatch.failures.detection import detect_late
from notifwatch.failures.grouping import Problem, record_problems
from notifwatch.failures.models import Kind
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import Outcome, RawEvent, Transport
from notifwatch.ingest.processing import store_raw

INHOUSE = (
    "01_retry_503_timeout_then_delivered.jsonl",
    "02_duplicate_send_same_idempotency_key.jsonl",
    "03_missing_customer_id.jsonl",
    "05_malformed_and_edge_lines.jsonl",
    "07_send_records_for_provider_samples.jsonl",
)


def row(rows, label):
    (found,) = [r for r in rows if r.label == label]
    return found


def test_it_counts_the_last_day_and_the_week_per_source(week):
    overview = build_overview(week)

    billing = row(overview.by_source, "Billing sender")
    assert billing.day == Tally(sent=3, reached=2, failures=1)
    assert billing.week == Tally(sent=5, reached=4, failures=1, duplicates=1, identity=1)
    shop = row(overview.by_source, "Shop")
    # The unsubscribe was the customer's choice: suppressed, but not a failure.
    assert shop.day == Tally(sent=2, unsettled=1)
    assert shop.week == Tally(sent=4, reached=1, unsettled=2)
    assert overview.total.week.sent == 9
    assert overview.total.day.sent == 5


def test_it_counts_per_channel(week):
    overview = build_overview(week)

    assert [r.label for r in overview.by_channel] == ["Email", "SMS"]
    email, sms = overview.by_channel
    assert email.day == Tally(sent=4, reached=1, unsettled=1, failures=1)
    assert email.week.sent == 8
    assert sms.day == Tally(sent=1, reached=1)
    assert sms.week == sms.day


def test_it_leaves_out_what_started_before_the_week(week, json_source):
    assert Notification.objects.filter(source=json_source).count() == 6
    overview = build_overview(week)
    assert row(overview.by_source, "Billing sender").week.sent == 5
    assert dict((v, n) for v, _, n in overview.statuses) == {
        "pending": 2,
        "deferred": 0,
        "delivered": 5,
        "bounced": 1,
        "failed": 0,
        "suppressed": 1,
        "complained": 0,
    }


def test_it_counts_late_as_the_late_exceptions_do(week):
    # Order confirmations may take 15 minutes: s2 (2 hours ago) and s4 (3 days ago) are late.
    detect_late(week)

    shop = row(build_overview(week).by_source, "Shop")

    assert shop.day.late == 1
    assert shop.week.late == 2
    assert row(build_overview(week).by_channel, "Email").week.late == 2


def test_it_adds_up_realistic_sender_logs(imported):
    notifications = list(imported(*INHOUSE))
    now = datetime(2025, 3, 15, 0, 0, tzinfo=UTC)
    week_start, day_start = now - timedelta(days=7), now - timedelta(days=1)

    overview = build_overview(now)

    (inhouse,) = overview.by_source
    in_week = [n for n in notifications if week_start <= n.first_event_at <= now]
    in_day = [n for n in in_week if n.first_event_at >= day_start]
    for tally, expected in ((inhouse.week, in_week), (inhouse.day, in_day)):
        assert tally.sent == len(expected) > 40
        assert tally.reached == sum(n.final_status in ("delivered", "complained") for n in expected)
        assert tally.failures == sum(n.counts_as_failure for n in expected)
        assert tally.duplicates == sum(n.duplicate_sends > 0 for n in expected) == 1
        assert tally.identity == sum(bool(n.identity_problem) for n in expected) >= 1
    assert overview.total.week == inhouse.week
    assert sum(r.week.sent for r in overview.by_channel) == len(in_week)
    # The malformed lines were stored and quarantined, and are counted for the week.
    assert overview.quarantined == RawEvent.objects.filter(outcome=Outcome.QUARANTINED).count() > 0


def test_it_tells_when_a_silent_source_last_reported(db, settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    now = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)  # a Friday
    postmark = save_source(slug="postmark", kind="postmark", name="Postmark", secret="u:p").source
    last = datetime(2025, 3, 11, 8, 30, tzinfo=UTC)  # Tuesday 14:00 in Kolkata
    RawEvent.objects.create(
        source=postmark,
        received_at=last,
        transport="webhook",
        body=b"{}",
        content_hash="x",
        outcome=Outcome.PARSED,
    )
    silence(postmark, now)

    with timezone.override("Asia/Kolkata"):
        overview = build_overview(now)

    (state,) = overview.silent
    assert state.text == "Postmark: no events since Tue 14:00"
    assert state.state == "silent"


def test_it_names_a_purpose_that_stopped(shop, week):
    silence(shop, week, purpose="order_shipped", last_seen=week - timedelta(hours=30))

    overview = build_overview(week)

    (state,) = overview.silent
    assert state.state == "partial"
    assert state.text.startswith("Shop: no order shipped sends since ")


def test_it_names_one_stopped_purpose_and_counts_the_others(shop, week):
    for purpose in ("order_shipped", "password_reset", "invoice_available"):
        silence(shop, week, purpose=purpose, last_seen=week - timedelta(hours=30))

    (state,) = build_overview(week).silent

    assert state.state == "partial"
    assert state.text.startswith("Shop: no invoice available sends since ")  # the newest
    assert state.text.endswith("(and 2 other notification types)")


def test_a_silent_source_outranks_its_silent_purposes(shop, week):
    silence(shop, week, purpose="order_shipped")
    silence(shop, week)

    (state,) = build_overview(week).silent

    assert state.state == "silent"
    assert state.text.startswith("Shop: no events since ")


def test_it_lists_sources_that_report_and_those_that_never_did(week, db):
    save_source(slug="crm", kind="csv", name="CRM export")
    states = {s.source.slug: s for s in build_overview(week).coverage}
    assert states["billing"].state == "ok"
    assert states["billing"].text.startswith("Billing sender: last event ")
    assert states["crm"].state == "never"
    assert states["crm"].text == "CRM export: no events yet"
    assert not build_overview(week).silent


def silence(source, now, purpose="", last_seen=None):
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    record_problems(
        [
            Problem(
                kind=Kind.SILENCE,
                fingerprint=f"silence|{source.pk}" + (f"|{purpose}" if purpose else ""),
                title=f"{source}: nothing received",
                occurred_at=hour,
                subject=f"{source.slug}:{purpose}:{hour.isoformat()}",
                source_id=source.pk,
                purpose=purpose,
                fix_owner="our_setup",
                detail={
                    "mode": "purpose_stopped" if purpose else "stopped_sending",
                    "last_seen": last_seen.isoformat() if last_seen else None,
                    "observed": 0,
                    "expected": 40.0,
                    "hours": 3,
                },
            )
        ],
        rule="silence",
    )


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (0, 0, "–"),
        (7, 7, "100%"),
        (99_999, 100_000, "99.9%"),
        (29, 100, "29.0%"),
        (1, 2, "50.0%"),
        (0, 3, "0.0%"),
    ],
)
def test_it_rounds_the_delivered_share_down(part, whole, text):
    assert share_text(part, whole) == text


def test_it_draws_the_week_in_local_three_hour_buckets(week):
    with timezone.override("Asia/Kolkata"):
        overview = build_overview(week)
    chart = overview.chart_volume
    assert 56 <= len(chart.bars) <= 57
    starts = {bar.title.split(", ")[1][:5] for bar in chart.bars}
    assert starts <= {"00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"}
    assert sum(int(row.total) for row in chart.table) == 9
    assert [s.total for s in chart.series] == [5, 1, 3]
    assert overview.chart_failures.total == 1


def raw_left(source, received_ago: timedelta, outcome: str = Outcome.RECEIVED) -> None:
    raw = store_raw(source, Transport.API, b'{"event_id": "e-1"}')
    RawEvent.objects.filter(pk=raw.pk).update(
        received_at=timezone.now() - received_ago, outcome=outcome
    )


def test_its_health_line_counts_raw_events_processing_has_not_settled(json_source, shop):
    raw_left(json_source, timedelta(minutes=7))
    raw_left(json_source, timedelta(seconds=30))  # its request may still be on it
    raw_left(shop, timedelta(days=3), Outcome.FAILED)
    raw_left(shop, timedelta(days=2), Outcome.FAILED)

    overview = build_overview()

    assert [u.text for u in overview.unprocessed] == [
        "Billing sender: 1 raw event waiting over 5 minutes to be processed",
        "Shop: 2 raw events could not be processed (an error on every try)",
    ]
    assert overview.unprocessed_waiting and overview.unprocessed_failed


def test_its_health_line_is_quiet_when_everything_was_processed(week):
    assert build_overview(week).unprocessed == []
