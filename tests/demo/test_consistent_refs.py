"""The demo's business references are consistent: an order, a ticket, an invoice (and a
subscription, a contract) belongs to one customer across every sender (issue 14, item 8)."""

import io
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from notifwatch.deliveries.lookup import find_notifications
from notifwatch.deliveries.models import NotificationRef

NOW = datetime(2025, 3, 14, 12, tzinfo=UTC)
# References that name one customer's thing; a campaign is sent to many customers on purpose.
OWNED_REFS = ("order_id", "ticket_id", "invoice_id", "subscription_id", "contract_id")


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded(db):
    call_command("seed_demo", stdout=io.StringIO(), notifications=1500, now=NOW.isoformat())


def customers_by_ref() -> dict[tuple[str, str], set[str]]:
    """(ref name, value) -> the customer ids of the notifications carrying it. Notifications
    without a customer id (which the demo has on purpose) name nobody and are left out."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    rows = NotificationRef.objects.filter(name__in=OWNED_REFS).exclude(notification__customer_id="")
    for name, value, customer_id in rows.values_list("name", "value", "notification__customer_id"):
        found[name, value].add(customer_id)
    return found


def test_every_order_ticket_and_invoice_belongs_to_one_customer(seeded):
    found = customers_by_ref()

    shared = {ref: sorted(ids) for ref, ids in found.items() if len(ids) > 1}
    assert shared == {}
    # The check looked at every kind, and at references several senders cite.
    assert {name for name, _ in found} == set(OWNED_REFS)
    pushed_orders = set(
        NotificationRef.objects.filter(
            name="order_id", notification__source__slug="push-sender"
        ).values_list("value", flat=True)
    )
    shop_orders = set(
        NotificationRef.objects.filter(
            name="order_id", notification__source__slug="shop-sender"
        ).values_list("value", flat=True)
    )
    assert len(pushed_orders & shop_orders) > 10
    pushed_tickets = set(
        NotificationRef.objects.filter(
            name="ticket_id", notification__source__slug="push-sender"
        ).values_list("value", flat=True)
    )
    desk_tickets = set(
        NotificationRef.objects.filter(
            name="ticket_id", notification__source__slug="support-desk"
        ).values_list("value", flat=True)
    )
    # Most: a ticket whose desk messages were rejected (the stale token) is still pushed about.
    assert len(pushed_tickets & desk_tickets) > len(pushed_tickets) // 2


def test_the_support_lookup_of_an_order_finds_one_customer(seeded):
    # An order the shop confirmed, shipped by SMS and pushed about: three senders' notifications.
    cited = (
        NotificationRef.objects.filter(name="order_id", notification__source__slug="push-sender")
        .exclude(notification__customer_id="")
        .values_list("value", flat=True)
    )
    order = next(
        value
        for value in cited.order_by("value")
        if find_notifications(value).values("source").distinct().count() > 1
    )

    found = find_notifications(order)

    assert {n.source.slug for n in found} >= {"shop-sender", "push-sender"}
    assert len({n.customer_id for n in found if n.customer_id}) == 1
