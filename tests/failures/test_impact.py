"""An exception's impact: people reached anyway only by a replacement, people without a customer
id counted by their recipient, and the queue and the review saying which count they show.

Events go in through the real ingest as a sender's API calls; the detection rules make the
exceptions. Order confirmations have a 15-minute timing window (windows.py).
"""

from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifwatch.deliveries.overview import open_exception_rows
from notifwatch.failures.detection import detect_delivery_failures, detect_late, run_checks
from notifwatch.failures.impact import refresh_impact
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.failures.reviews import start_review
from tests.exceptions.data import BOUNCE_CODE, BOUNCE_MESSAGE, send

pytestmark = pytest.mark.django_db

START = timezone.now() - timedelta(hours=6)


def notification(
    key: str,
    outcome: str,
    at,
    customer: str = "",
    *,
    purpose: str = "order_confirmation",
    channel: str = "email",
    recipient: str = "",
    refs: dict | None = None,
) -> list[dict]:
    """A send at `at` and its outcome 20 seconds later (none when `outcome` is "sent")."""
    base = {
        "notification_key": key,
        "channel": channel,
        "purpose": purpose,
        "customer_id": customer,
        "recipient": recipient or f"{(customer or key).lower()}@example.com",
        "refs": refs or {},
        "provider": "sendgrid",
    }
    events = [base | {"event_id": f"{key}:sent", "occurred_at": at.isoformat(), "status": "sent"}]
    if outcome != "sent":
        failure = {"error_code": BOUNCE_CODE, "error_message": BOUNCE_MESSAGE}
        events.append(
            base
            | {
                "event_id": f"{key}:{outcome}",
                "occurred_at": (at + timedelta(seconds=20)).isoformat(),
                "status": outcome,
            }
            | (failure if outcome == "bounced" else {})
        )
    return events


def bounced(key: str, at, customer: str = "", **kwargs) -> list[dict]:
    """Bounced 20 seconds after it was sent: the failure is then."""
    return notification(key, "bounced", at, customer, **kwargs)


def delivered(key: str, at, customer: str = "", **kwargs) -> list[dict]:
    """Started (sent) at `at`, delivered 20 seconds later."""
    return notification(key, "delivered", at, customer, **kwargs)


def failures(source, *notifications: list[dict]) -> FailureGroup:
    """Send these notifications, detect the failures; the order confirmations' exception."""
    send(source, *[e for events in notifications for e in events])
    detect_delivery_failures(timezone.now() - timedelta(days=8))
    return FailureGroup.objects.get(kind=Kind.DELIVERY_FAILURE, purpose="order_confirmation")


def figures(group: FailureGroup) -> tuple[int, int, int]:
    group.refresh_from_db()
    return group.customers_affected, group.customers_reached_anyway, group.customers_not_reached


def by_recipient(group: FailureGroup) -> tuple[int, int]:
    group.refresh_from_db()
    return group.customers_affected_by_recipient, group.customers_not_reached_by_recipient


FAILED_AT = START + timedelta(seconds=20)


# --- Reached anyway: only a replacement ------------------------------------------------------


def test_a_delivery_months_earlier_does_not_count(json_source):
    months_ago = START - timedelta(days=90)
    group = failures(
        json_source,
        delivered("ord-100:email", months_ago, "C-1", refs={"order_id": "ORD-100"}),
        bounced("ord-200:email", START, "C-1", refs={"order_id": "ORD-200"}),
    )
    assert figures(group) == (1, 0, 1)


def test_an_earlier_message_about_the_same_ticket_does_not_count(json_source):
    """A reference shared with a message sent before the failure is an earlier update, not a
    replacement: the customer still missed this one."""
    send(
        json_source,
        *delivered(
            "tck-5:1",
            START - timedelta(days=30),
            "C-1",
            purpose="ticket_update",
            refs={"ticket_id": "T-5"},
        ),
        *bounced("tck-5:2", START, "C-1", purpose="ticket_update", refs={"ticket_id": "T-5"}),
    )
    detect_delivery_failures(timezone.now() - timedelta(days=8))
    assert figures(FailureGroup.objects.get(purpose="ticket_update")) == (1, 0, 1)


def test_a_resend_for_the_same_order_counts_however_late(json_source):
    two_days_later = START + timedelta(days=2)
    group = failures(
        json_source,
        bounced("ord-1:email", START - timedelta(days=3), "C-1", refs={"order_id": "ORD-1"}),
        delivered(
            "ord-1:sms",
            START,
            "C-1",
            channel="sms",
            recipient="+15550001",
            refs={"order_id": "ORD-1"},
        ),
        # The same order's resend to another customer is not C-2's replacement.
        bounced("ord-2:email", START - timedelta(days=3), "C-2", refs={"order_id": "ORD-2"}),
        delivered("ord-2:retry", two_days_later, "C-9", refs={"order_id": "ORD-2"}),
    )
    assert figures(group) == (2, 1, 1)


def test_a_resend_without_references_counts_within_the_window_only(json_source):
    group = failures(
        json_source,
        # 10 minutes after the bounce: within the order confirmation's 15 minutes.
        bounced("ord-1:email", START, "C-1"),
        delivered("ord-1:again", FAILED_AT + timedelta(minutes=10), "C-1"),
        # 30 minutes after: another confirmation, not this one's replacement.
        bounced("ord-2:email", START, "C-2"),
        delivered("ord-2:again", FAILED_AT + timedelta(minutes=30), "C-2"),
        # Started a second before the bounce came back: not a replacement either.
        bounced("ord-3:email", START, "C-3"),
        delivered("ord-3:other", FAILED_AT - timedelta(seconds=1), "C-3"),
        # Exactly at the end of the window still counts.
        bounced("ord-4:email", START, "C-4"),
        delivered("ord-4:again", FAILED_AT + timedelta(minutes=15), "C-4"),
    )
    assert figures(group) == (4, 2, 2)


def test_another_purpose_does_not_count(json_source):
    group = failures(
        json_source,
        bounced("ord-1:email", START, "C-1", refs={"order_id": "ORD-1"}),
        delivered(
            "ord-1:shipped",
            FAILED_AT + timedelta(minutes=1),
            "C-1",
            purpose="order_shipped",
            refs={"order_id": "ORD-1"},
        ),
    )
    assert figures(group) == (1, 0, 1)


def test_a_customer_with_one_of_two_orders_resent_was_not_reached(json_source):
    """Reached anyway means every failure of theirs in the exception was replaced."""
    group = failures(
        json_source,
        bounced("ord-1:email", START, "C-1", refs={"order_id": "ORD-1"}),
        bounced("ord-2:email", START + timedelta(hours=1), "C-1", refs={"order_id": "ORD-2"}),
        delivered("ord-1:sms", START + timedelta(hours=3), "C-1", refs={"order_id": "ORD-1"}),
        bounced("ord-3:email", START, "C-2", refs={"order_id": "ORD-3"}),
        delivered("ord-3:sms", START + timedelta(hours=3), "C-2", refs={"order_id": "ORD-3"}),
    )
    assert figures(group) == (2, 1, 1)


def test_a_resend_after_detection_is_counted_by_the_next_pass(json_source):
    now = timezone.now()
    group = failures(json_source, bounced("ord-1:email", now - timedelta(minutes=5), "C-1"))
    assert figures(group) == (1, 0, 1)

    send(json_source, *delivered("ord-1:sms", now - timedelta(minutes=2), "C-1", channel="sms"))
    run_checks()

    assert figures(group) == (1, 1, 0)


def test_a_late_notification_that_arrived_was_reached_anyway(json_source):
    """For a late one, its own delivery counts: it arrived, late. Not so for a failure."""
    now = timezone.now()
    send(json_source, *notification("ord-1:email", "sent", now - timedelta(hours=2), "C-1"))
    detect_late(now)
    late = FailureGroup.objects.get(kind=Kind.LATE)
    assert figures(late) == (1, 0, 1)

    arrived = notification("ord-1:email", "delivered", now - timedelta(minutes=2), "C-1")[1]
    send(json_source, arrived)
    run_checks()

    assert figures(late) == (1, 1, 0)


# --- People without a customer id: counted by recipient --------------------------------------


def test_failures_without_a_customer_id_are_counted_by_recipient(json_source):
    group = failures(
        json_source,
        # Two failures to one address are one person.
        bounced("ord-1:email", START, recipient="ann@example.com"),
        bounced("ord-2:email", START + timedelta(hours=1), recipient="ann@example.com"),
        bounced("ord-3:email", START, recipient="bob@example.com"),
        # A resend to the same address within the window reached them.
        bounced("ord-4:email", START, recipient="cat@example.com"),
        delivered("ord-4:again", FAILED_AT + timedelta(minutes=5), recipient="cat@example.com"),
        # A customer id is counted as before.
        bounced("ord-5:email", START, "C-5", recipient="dan@example.com"),
    )
    assert group.occurrences == 5
    assert figures(group) == (4, 1, 3)
    assert by_recipient(group) == (3, 2)


def test_the_overview_adds_up_the_people_not_reached(json_source):
    group = failures(
        json_source,
        bounced("ord-1:email", START, recipient="ann@example.com"),
        bounced("ord-2:email", START, recipient="bob@example.com"),
        bounced("ord-3:email", START, "C-3"),
    )
    rows = [row for row in open_exception_rows() if row["kind"] == Kind.DELIVERY_FAILURE]
    assert figures(group) == (3, 0, 3)
    assert sum(row["not_reached"] for row in rows) == 3


def five_addresses_and_one_customer(source) -> tuple[FailureGroup, FailureGroup]:
    """Five recipients without a customer id bounced; one customer's renewal notice did."""
    no_ids = failures(
        source, *[bounced(f"ord-{n}:email", START, recipient=f"r{n}@example.com") for n in range(5)]
    )
    send(source, *bounced("ren-1:email", START, "C-1", purpose="renewal_notice"))
    detect_delivery_failures(timezone.now() - timedelta(days=8))
    return no_ids, FailureGroup.objects.get(purpose="renewal_notice")


def test_the_queue_puts_five_recipients_above_one_customer(client, viewer, json_source):
    no_ids, one_customer = five_addresses_and_one_customer(json_source)
    assert (no_ids.customers_not_reached, one_customer.customers_not_reached) == (5, 1)
    client.force_login(viewer)

    content = unescape(client.get(reverse("exception_list")).content.decode())

    assert content.index(f'id="exception-{no_ids.pk}"') < content.index(
        f'id="exception-{one_customer.pk}"'
    )
    # The row says which count it shows; the customer's row needs no such note.
    row = content.split(f'id="exception-{no_ids.pk}"')[1].split("</tr>")[0]
    assert "of 5 affected (5 by address)" in row
    assert "5 counted by address: no customer id" in row
    other = content.split(f'id="exception-{one_customer.pk}"')[1].split("</tr>")[0]
    assert "counted by" not in other and "of 1 affected</div>" in other


def test_the_review_card_says_which_count_it_shows(client, reviewer, json_source):
    no_ids, _ = five_addresses_and_one_customer(json_source)
    send(
        json_source,
        *delivered("ord-0:again", FAILED_AT + timedelta(minutes=1), recipient="r0@example.com"),
    )
    refresh_impact([no_ids.pk])
    review, _ = start_review(reviewer)
    item = review.items.get(group=no_ids)
    client.force_login(reviewer)

    url = reverse("review_detail", args=[review.pk]) + f"?item={item.pk}"
    content = unescape(client.get(url).content.decode())

    card = content.split('class="review-impact"')[1].split("Open the exception")[0]
    assert '<div class="stat-n">4</div><div class="stat-l">customers not reached' in card
    assert "4 counted by address: no customer id" in card
    assert '<div class="stat-n">1</div><div class="stat-l">reached anyway' in card
    assert '<div class="stat-n">5</div><div class="stat-l">customers affected' in card
    assert "5 counted by address: no customer id" in card


def test_the_exception_page_names_the_recipient_of_the_channel(client, viewer, json_source):
    send(
        json_source,
        *[
            e
            for n in range(2)
            for e in bounced(
                f"otp-{n}:sms",
                START,
                purpose="order_confirmation",
                channel="sms",
                recipient=f"+1555000{n}",
            )
        ],
    )
    detect_delivery_failures(timezone.now() - timedelta(days=8))
    group = FailureGroup.objects.get(channel="sms")
    client.force_login(viewer)

    content = client.get(reverse("exception_detail", args=[group.pk])).content.decode()

    assert "2 counted by phone number: no customer id" in content


# --- Scale: one grouped query, whatever the occurrences ---------------------------------------


def test_a_recount_takes_the_same_queries_for_3_or_60_occurrences(json_source):
    def queries_to_recount(count: int, purpose: str) -> int:
        events = []
        for n in range(count):
            key = f"{purpose}-{n}"
            events += bounced(key, START, f"C-{n % 40}", purpose=purpose, refs={"order_id": key})
            if n % 3 == 0:  # a third resent, some through a reference, some in the window
                events += delivered(
                    f"{key}:again",
                    FAILED_AT + timedelta(minutes=n % 20),
                    f"C-{n % 40}",
                    purpose=purpose,
                    refs={"order_id": key} if n % 2 else {},
                )
            if n % 5 == 0:  # and some without a customer id
                events += bounced(f"{key}:anon", START, purpose=purpose, recipient=f"a{n}@x.org")
        send(json_source, *events)
        detect_delivery_failures(timezone.now() - timedelta(days=8))
        group = FailureGroup.objects.get(purpose=purpose)
        FailureGroup.objects.filter(pk=group.pk).update(occurrences=0)  # so it writes
        with CaptureQueriesContext(connection) as queries:
            refresh_impact([group.pk])
        return len(queries)

    assert queries_to_recount(3, "order_confirmation") == queries_to_recount(
        60, "invoice_available"
    )
