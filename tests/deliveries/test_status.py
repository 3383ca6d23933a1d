"""settle(): final status from events in the order they happened."""

from datetime import UTC, datetime, timedelta

from notifwatch.deliveries.status import EventFacts, counts_as_failure, settle

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


def ev(order, kind, minutes, attempt=None, message_id="", event_id=None):
    return EventFacts(
        order=order,
        event_type=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
        provider_message_id=message_id,
        event_id=event_id or f"e{order}",
    )


def test_it_orders_by_event_time_not_arrival():
    # delivered arrives first, the earlier "sent" arrives late
    result = settle([ev(1, "delivered", 5), ev(2, "sent", 1)])
    assert result.final_status == "delivered"
    assert result.settled_at == T0 + timedelta(minutes=5)


def test_it_never_lets_a_later_sent_or_deferred_overwrite_delivered():
    result = settle([ev(1, "delivered", 1), ev(2, "deferred", 2), ev(3, "sent", 3)])
    assert result.final_status == "delivered"


def test_it_lets_a_later_bounce_or_complaint_win_over_delivered():
    assert settle([ev(1, "delivered", 1), ev(2, "bounced", 2)]).final_status == "bounced"
    assert settle([ev(1, "delivered", 1), ev(2, "complained", 60)]).final_status == "complained"


def test_it_keeps_delivered_when_a_stray_failure_report_follows():
    assert settle([ev(1, "delivered", 1), ev(2, "failed", 2)]).final_status == "delivered"


def test_it_counts_attempts_for_delivered_on_the_third_attempt():
    result = settle([ev(1, "deferred", 0, 1), ev(2, "deferred", 1, 2), ev(3, "delivered", 2, 3)])
    assert (result.final_status, result.attempts) == ("delivered", 3)


def test_it_counts_attempts_from_deferrals_when_the_sender_gives_no_numbers():
    result = settle(
        [ev(1, "sent", 0), ev(2, "deferred", 1), ev(3, "deferred", 2), ev(4, "delivered", 3)]
    )
    assert result.attempts == 3


def test_it_stays_deferred_while_retries_are_pending():
    result = settle([ev(1, "sent", 0), ev(2, "deferred", 1)])
    assert (result.final_status, result.settled_at) == ("deferred", None)


def test_it_reopens_a_failure_when_a_newer_attempt_is_sent():
    result = settle([ev(1, "failed", 0, 1), ev(2, "sent", 1, 2)])
    assert result.final_status == "pending"
    assert settle([ev(1, "failed", 0, 1), ev(2, "sent", 1, 1)]).final_status == "failed"


def test_it_records_two_distinct_deliveries_as_a_duplicate_send():
    result = settle([ev(1, "delivered", 0, 1, "msg-a"), ev(2, "delivered", 1, 1, "msg-b")])
    assert result.duplicate_sends == 1


def test_it_does_not_count_two_reports_of_the_same_message_as_a_duplicate_send():
    result = settle([ev(1, "delivered", 0, 1, "msg-a"), ev(2, "delivered", 1, None, "msg-a")])
    assert result.duplicate_sends == 0


def test_it_treats_an_open_as_proof_of_delivery_but_not_over_a_bounce():
    assert settle([ev(1, "sent", 0), ev(2, "opened", 5)]).final_status == "delivered"
    assert settle([ev(1, "bounced", 0), ev(2, "opened", 5)]).final_status == "bounced"


def test_it_is_pending_without_events():
    assert settle([]).final_status == "pending"


def test_it_counts_failures_but_not_the_recipients_own_choice():
    assert counts_as_failure("bounced", "recipient_data")
    assert counts_as_failure("suppressed", "recipient_data")  # suppressed after an earlier bounce
    assert not counts_as_failure("suppressed", "recipient_choice")
    assert not counts_as_failure("complained", "recipient_choice")
    assert not counts_as_failure("deferred", "provider")
