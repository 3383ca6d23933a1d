"""Delivery failures become exceptions, and the lifecycle moves on as they grow."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.failures.actions import set_status, snooze
from notifwatch.failures.detection import detect_delivery_failures, run_checks, wake_snoozed
from notifwatch.failures.models import (
    FailureGroup,
    GroupHistory,
    HistoryKind,
    Kind,
    Occurrence,
    OwnerRule,
    Status,
)
from tests.failures.test_detection_builders import bounce, event, import_events

pytestmark = pytest.mark.django_db


def bounces(count: int, start: int = 0, customers: int | None = None, hours_ago: int = 2):
    at = timezone.now() - timedelta(hours=hours_ago)
    events = []
    for n in range(start, start + count):
        customer = f"C-{n % customers if customers else n}"
        events += bounce(f"ord-{n}:order_confirmation:email", at + timedelta(seconds=n), customer)
    return events


def since():
    return timezone.now() - timedelta(days=8)


def test_it_groups_300_bounces_of_one_kind_into_one_exception(json_source):
    import_events(json_source, bounces(300, customers=250))

    detect_delivery_failures(since())

    group = FailureGroup.objects.get()
    assert group.kind == Kind.DELIVERY_FAILURE
    assert group.occurrences == 300
    assert group.customers_affected == 250
    assert group.customers_not_reached == 250
    assert group.source == json_source
    assert (group.channel, group.purpose) == ("email", "order_confirmation")
    assert (group.reason_category, group.fix_owner) == ("invalid_address", "recipient_data")
    assert group.title == (
        "Order confirmation emails bounced: the email address does not exist at the "
        "recipient's provider"
    )


def test_it_keeps_reason_categories_channels_and_purposes_apart(json_source):
    at = timezone.now() - timedelta(hours=1)
    full = [
        event("k-full", "sent", at, customer_id="C-9"),
        event(
            "k-full",
            "bounced",
            at + timedelta(seconds=5),
            customer_id="C-9",
            error_code="5.2.2",
            error_message="552 5.2.2 Mailbox full",
        ),
    ]
    import_events(json_source, bounces(3) + bounces(2, start=10, hours_ago=3) + full)
    import_events(
        json_source,
        bounce("k-receipt", at, "C-7", purpose="payment_receipt"),
        name="receipts.jsonl",
    )

    detect_delivery_failures(since())

    counted = dict(FailureGroup.objects.values_list("title", "occurrences"))
    assert counted == {
        "Order confirmation emails bounced: the email address does not exist at the "
        "recipient's provider": 5,
        "Order confirmation emails bounced: the recipient's mailbox is full and the provider "
        "stopped trying to deliver": 1,
        "Payment receipt emails bounced: the email address does not exist at the "
        "recipient's provider": 1,
    }


def test_it_leaves_out_what_the_customer_chose(json_source):
    at = timezone.now() - timedelta(hours=1)
    import_events(
        json_source,
        [
            event("k-unsub", "failed", at, error_code="Unsubscribed Address"),
            event("k-spam", "delivered", at),
            event("k-spam", "complained", at + timedelta(minutes=5)),
        ],
    )

    detect_delivery_failures(since())

    assert not FailureGroup.objects.exists()


def test_it_counts_customers_reached_anyway(json_source):
    at = timezone.now() - timedelta(hours=2)
    # C-0's confirmation went again by SMS a minute after the email bounced.
    retried = [
        event(
            "ord-0:order_confirmation:sms",
            "delivered",
            at + timedelta(minutes=1),
            channel="sms",
            customer_id="C-0",
        )
    ]
    import_events(json_source, bounces(2) + retried)

    detect_delivery_failures(since())

    group = FailureGroup.objects.get()
    assert (group.customers_affected, group.customers_reached_anyway) == (2, 1)
    assert group.customers_not_reached == 1


def test_it_adds_nothing_on_a_second_pass(json_source):
    import_events(json_source, bounces(30))
    first = run_checks()

    again = run_checks()

    assert first[Kind.DELIVERY_FAILURE] == 30
    assert again[Kind.DELIVERY_FAILURE] == 0
    assert Occurrence.objects.count() == 30
    assert GroupHistory.objects.filter(kind=HistoryKind.CREATED).count() == 1


def test_its_queries_do_not_grow_with_the_failures(json_source):
    import_events(json_source, bounces(20))
    with CaptureQueriesContext(connection) as few:
        detect_delivery_failures(since())
    FailureGroup.objects.all().delete()
    import_events(json_source, bounces(400, start=100))

    with CaptureQueriesContext(connection) as many:
        detect_delivery_failures(since())

    assert FailureGroup.objects.get().occurrences == 420
    # A few more for batched inserts (SQLite caps the parameters per statement), never one
    # per notification.
    assert len(many) <= len(few) + 5


def test_it_reopens_a_resolved_exception_as_regressed(json_source, reviewer):
    import_events(json_source, bounces(5))
    detect_delivery_failures(since())
    group = set_status(FailureGroup.objects.get(), Status.RESOLVED, actor=reviewer)

    import_events(json_source, bounces(2, start=50), name="later.jsonl")
    detect_delivery_failures(since())

    group.refresh_from_db()
    assert group.status == Status.REGRESSED
    assert group.occurrences == 7
    regressed = group.history.get(kind=HistoryKind.REGRESSED)
    assert regressed.actor is None
    assert regressed.rule == "delivery failures"
    assert "2 new occurrence(s)" in regressed.comment


def test_a_resolved_exception_stays_resolved_when_nothing_new_arrives(json_source, reviewer):
    import_events(json_source, bounces(5))
    detect_delivery_failures(since())
    set_status(FailureGroup.objects.get(), Status.RESOLVED, actor=reviewer)

    run_checks()

    assert FailureGroup.objects.get().status == Status.RESOLVED


def test_a_snoozed_exception_wakes_on_its_date(json_source, reviewer):
    import_events(json_source, bounces(5))
    detect_delivery_failures(since())
    now = timezone.now()
    snooze(FailureGroup.objects.get(), now + timedelta(days=1), actor=reviewer)

    assert wake_snoozed(now + timedelta(hours=23)) == 0
    assert wake_snoozed(now + timedelta(days=1, minutes=1)) == 1

    group = FailureGroup.objects.get()
    assert group.status == Status.NEW
    assert group.snoozed_until is None
    woke = group.history.get(kind=HistoryKind.WOKE)
    assert woke.rule == "snooze expired"


def test_a_snoozed_exception_wakes_when_it_grows_past_its_threshold(json_source, reviewer):
    import_events(json_source, bounces(5))
    detect_delivery_failures(since())
    far = timezone.now() + timedelta(days=30)
    snooze(FailureGroup.objects.get(), far, wake_at_occurrences=10, actor=reviewer)

    import_events(json_source, bounces(3, start=20), name="more.jsonl")
    detect_delivery_failures(since())
    assert FailureGroup.objects.get().status == Status.SNOOZED

    import_events(json_source, bounces(2, start=40), name="even-more.jsonl")
    detect_delivery_failures(since())
    group = FailureGroup.objects.get()
    assert group.status == Status.NEW
    assert "grew to 10 occurrences" in group.history.get(kind=HistoryKind.WOKE).comment


def test_owner_rules_route_new_exceptions_on_arrival(json_source):
    crm = Team.objects.create(name="CRM admins")
    engineering = Team.objects.create(name="Engineering")
    OwnerRule.objects.create(position=10, team=crm, fix_owner="recipient_data")
    OwnerRule.objects.create(position=20, team=engineering)
    import_events(json_source, bounces(3))

    detect_delivery_failures(since())

    group = FailureGroup.objects.get()
    assert group.team == crm
    assert group.status == Status.ASSIGNED
    assigned = group.history.get(kind=HistoryKind.ASSIGNED)
    assert assigned.actor is None
    assert assigned.rule.startswith("owner rule")


def test_an_exception_no_rule_matches_stays_unowned_and_new(json_source):
    OwnerRule.objects.create(team=Team.objects.create(name="Billing"), purpose="invoice_available")
    import_events(json_source, bounces(3))

    detect_delivery_failures(since())

    group = FailureGroup.objects.get()
    assert (group.team, group.status) == (None, Status.NEW)


def suppressed_after_bounce(key: str, customer: str, at):
    """A send the provider did not try: the address was on its list after an earlier bounce."""
    return [
        event(key, "sent", at, customer_id=customer),
        event(
            key,
            "suppressed",
            at + timedelta(seconds=5),
            customer_id=customer,
            error_code="5.1.1",
            error_message="Bounced Address",
        ),
    ]


def test_a_title_names_every_status_its_rows_have(json_source):
    at = timezone.now() - timedelta(hours=1)
    import_events(json_source, suppressed_after_bounce("k-s1", "C-1", at), name="a.jsonl")
    detect_delivery_failures(since())
    group = FailureGroup.objects.get()
    assert group.title.startswith("Order confirmation emails were suppressed: ")

    # Bounces of the same reason join it later: the title must not call them suppressed.
    import_events(json_source, bounces(2, start=10), name="b.jsonl")
    detect_delivery_failures(since())

    group = FailureGroup.objects.get()
    assert group.occurrences == 3
    assert group.title.startswith("Order confirmation emails bounced or were suppressed: ")
    assert group.detail["statuses"] == ["bounced", "suppressed"]


def test_a_title_names_both_statuses_when_they_arrive_together(json_source):
    at = timezone.now() - timedelta(hours=1)
    import_events(json_source, suppressed_after_bounce("k-s1", "C-1", at) + bounces(1))

    detect_delivery_failures(since())

    assert FailureGroup.objects.get().title.startswith(
        "Order confirmation emails bounced or were suppressed: "
    )


def test_the_provider_text_beside_a_reason_names_the_provider_as_readers_know_it(json_source):
    from notifwatch.failures.explain import raw_said

    at = timezone.now() - timedelta(hours=1)
    push = {"channel": "push", "recipient": "device-token-1", "provider": "apns"}
    import_events(
        json_source,
        [
            event("k-p1", "sent", at, **push),
            event(
                "k-p1",
                "failed",
                at + timedelta(seconds=2),
                error_code="BadDeviceToken",
                error_message="BadDeviceToken",
                **push,
            ),
        ],
    )
    detect_delivery_failures(since())

    said = raw_said(FailureGroup.objects.get(), personal=True)
    assert said.label == "Apple (APNs) said"
    # A message that only repeats the code is not shown twice.
    assert (said.code, said.message) == ("BadDeviceToken", "")
