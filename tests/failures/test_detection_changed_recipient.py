"""One customer id reached at several email addresses or phone numbers: an address that changed.

The data goes in through the real ingest (an import file of canonical events), as a sender's
log would, so the recipients are stored as ingest normalises them.
"""

from datetime import datetime, timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import dateformat, timezone

from notifwatch.deliveries.models import Notification
from notifwatch.failures.actions import set_status
from notifwatch.failures.detection import detect_identity, run_checks
from notifwatch.failures.explain import explain
from notifwatch.failures.models import FailureGroup, Fingerprint, Kind, Occurrence, Status
from notifwatch.failures.reviews import start_review
from notifwatch.ingest.actions import save_source
from tests.failures.test_detection_builders import event, import_events

pytestmark = pytest.mark.django_db

OLD = "pat.moreau@example.com"
NEW = "pat.moreau@example.net"
NOW = timezone.now()


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def local(moment: datetime) -> str:
    """How the pages write a moment: in the reader's time zone."""
    return dateformat.format(timezone.localtime(moment), "D M j, H:i")


def detect() -> set[int]:
    return detect_identity(NOW - timedelta(days=8))


def delivered(key: str, at: datetime, recipient: str, customer_id: str = "cus_10733", **extra):
    return event(key, "delivered", at, customer_id=customer_id, recipient=recipient, **extra)


@pytest.fixture
def shop(db):
    return save_source(slug="shop", kind="json", name="Shop").source


@pytest.fixture
def moved(json_source):
    """cus_10733 changed their email address four days ago; their SMS number stayed; another
    customer kept theirs all week."""
    import_events(
        json_source,
        [
            delivered("ord-1:order_confirmation:email", ago(days=6), OLD),
            delivered("ord-1:order_shipped:email", ago(days=5), OLD, purpose="order_shipped"),
            delivered("inv-7:invoice_available:email", ago(days=5, hours=2), OLD),
            delivered("ord-1:out_for_delivery:sms", ago(days=4), "+14155550118", channel="sms"),
            delivered("ord-2:order_confirmation:email", ago(days=3), NEW),
            delivered("ord-2:order_shipped:email", ago(days=2), NEW, purpose="order_shipped"),
            delivered("ord-3:order_confirmation:email", ago(days=3), "kim@example.org", "cus_2"),
            delivered("ord-4:order_confirmation:email", ago(days=1), "kim@example.org", "cus_2"),
        ],
    )
    detect()
    return FailureGroup.objects.get()


def test_a_customer_whose_address_changed_is_one_identity_exception(moved):
    assert moved.kind == Kind.IDENTITY
    assert moved.title == "Customer cus_10733 reached at 2 email addresses"
    assert (moved.channel, moved.fix_owner, moved.source) == ("email", "recipient_data", None)
    # The sends to the old address are what is counted: the new one is where mail should go.
    assert moved.occurrences == 3
    assert moved.customers_affected == 1
    assert set(Occurrence.objects.values_list("notification__recipient", flat=True)) == {OLD}
    assert moved.last_seen == ago(days=5)
    old, new = moved.detail["addresses"]
    assert (old["recipient"], new["recipient"]) == ("p•••@example.com", "p•••@example.net")
    assert (old["first_seen"], old["last_seen"]) == (
        ago(days=6).isoformat(),
        ago(days=5).isoformat(),
    )
    assert (old["notifications"], new["notifications"]) == (3, 2)
    assert old["sources"] == new["sources"] == ["Billing sender"]
    # Personal data stays out of the fingerprint and the stored facts.
    fingerprint = Fingerprint.objects.get().value
    assert "cus_10733" not in fingerprint and "pat" not in fingerprint
    assert OLD not in str(moved.detail) and NEW not in str(moved.detail)


def test_it_explains_which_address_is_likely_current(moved):
    explanation = explain(moved, personal=False)

    assert explanation.sentence == (
        f"Customer cus_10733 was reached at p•••@example.com until {local(ago(days=5))}, "
        f"then at p•••@example.net from {local(ago(days=3))}: the email address probably "
        "changed, and the newer one is likely the current one."
    )
    assert explanation.action.startswith("Confirm the customer's current email address in the CRM")
    assert "fix any source that still sends to the old one" in explanation.action
    assert explanation.fix_owner.startswith("Whoever keeps the customer's contact details")
    facts = {label: (text, url) for label, text, url in explanation.facts}
    assert facts["Older email address"][0] == (
        f"p•••@example.com · used {local(ago(days=6))} → {local(ago(days=5))} · "
        "3 notifications · by Billing sender"
    )
    assert facts["Newer email address (likely current)"][0].startswith("p•••@example.net · ")
    assert facts["Customer id"] == ("cus_10733", "/notifications/?q=cus_10733&channel=email")
    assert "Address count" not in facts


def test_an_email_address_and_a_phone_number_of_one_customer_are_normal(json_source):
    import_events(
        json_source,
        [
            delivered("k-1", ago(days=2), OLD),
            delivered("k-2", ago(days=2), "+14155550118", channel="sms"),
            delivered("k-3", ago(days=1), "dev_ccffd0b670", channel="push"),
            # Two devices of one customer are normal too: push is not compared.
            delivered("k-4", ago(days=1), "dev_0a1b2c3d4e", channel="push"),
        ],
    )

    assert not detect()
    assert not FailureGroup.objects.exists()


def test_the_same_address_written_differently_is_one_address(json_source, shop):
    import_events(
        json_source,
        [
            delivered("k-1", ago(days=3), "Pat.Moreau@Example.COM "),
            delivered("k-2", ago(days=3), "+447700900123", channel="sms"),
            delivered("k-3", ago(days=3), "+14155550118", channel="sms", customer_id="cus_2"),
        ],
    )
    import_events(
        shop,
        [
            delivered("s-1", ago(days=1), OLD),
            # A UK number without its "+": the phone library cannot place it from the US.
            delivered("s-2", ago(days=1), "447700900123", channel="sms"),
            delivered("s-3", ago(days=1), "(415) 555-0118", channel="sms", customer_id="cus_2"),
        ],
    )
    assert Notification.objects.filter(recipient="447700900123").exists()

    assert not detect()
    assert not FailureGroup.objects.exists()


def test_a_source_still_using_the_old_number_is_named(json_source, shop):
    """The shop has the new number; billing still texts the old one."""
    sms = {"channel": "sms", "purpose": "payment_reminder"}
    import_events(
        json_source,
        [
            delivered("b-1", ago(days=6), "+447700900123", **sms),
            delivered("b-2", ago(days=1), "+447700900123", **sms),
        ],
    )
    import_events(shop, [delivered("s-1", ago(days=3), "+447700900456", channel="sms")])

    detect()

    group = FailureGroup.objects.get()
    assert group.title == "Customer cus_10733 reached at 2 phone numbers"
    assert group.occurrences == 2
    sentence = explain(group, personal=True).sentence
    assert sentence == (
        "Customer cus_10733 was reached at 2 phone numbers in the same period: +44•••••0123 "
        f"(last used {local(ago(days=1))}, by Billing sender), and +44•••••0456 (first used "
        f"{local(ago(days=3))}, by Shop). The newer one is likely the current one: a source "
        "probably still sends to the old one."
    )


def test_rerunning_the_checks_counts_nothing_twice(moved, json_source):
    assert not detect()
    run_checks(NOW)
    run_checks(NOW)

    group = FailureGroup.objects.get()
    assert group.occurrences == Occurrence.objects.count() == 3


def test_sends_to_the_new_address_keep_its_facts_current_without_counting(moved, json_source):
    set_status(moved, Status.RESOLVED)
    import_events(json_source, [delivered("ord-5:order_confirmation:email", ago(hours=1), NEW)])

    assert not detect()

    group = FailureGroup.objects.get()
    assert (group.status, group.occurrences) == (Status.RESOLVED, 3)
    new = group.detail["addresses"][-1]
    assert (new["last_seen"], new["notifications"]) == (ago(hours=1).isoformat(), 3)


def test_a_send_to_the_old_address_after_the_fix_regresses_it(moved, json_source):
    set_status(moved, Status.RESOLVED)
    import_events(json_source, [delivered("inv-8:invoice_available:email", ago(hours=1), OLD)])

    assert detect() == {moved.pk}

    group = FailureGroup.objects.get()
    assert (group.status, group.occurrences) == (Status.REGRESSED, 4)
    assert "in the same period" in explain(group, personal=False).sentence


def test_a_third_address_updates_the_title(moved, json_source):
    third = "pat@example.org"
    import_events(json_source, [delivered("ord-6:order_confirmation:email", ago(hours=2), third)])

    detect()

    group = FailureGroup.objects.get()
    assert group.title == "Customer cus_10733 reached at 3 email addresses"
    # The address used until now is an older one as well.
    assert group.occurrences == 5
    assert [a["recipient"] for a in group.detail["addresses"]] == [
        "p•••@example.com",
        "p•••@example.net",
        "p•••@example.org",
    ]


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return unescape(response.content.decode())


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_the_exception_page_masks_the_addresses_without_personal_data(client, request, role, moved):
    client.force_login(request.getfixturevalue(role))

    content = page(client, reverse("exception_detail", args=[moved.pk]))

    assert "Customer cus_10733 reached at 2 email addresses" in content
    assert "Customer cus_10733 was reached at p•••@example.com until" in content
    assert "Older email address</dt><dd>p•••@example.com · used" in content
    assert "Newer email address (likely current)</dt><dd>p•••@example.net · used" in content
    assert OLD not in content and NEW not in content
    assert "pat.moreau" not in content


def test_the_review_card_says_which_address_is_likely_current(client, reviewer, moved):
    review, _ = start_review(reviewer)
    item = review.items.get(group=moved)
    client.force_login(reviewer)

    content = page(client, f"{reverse('review_detail', args=[review.pk])}?item={item.pk}")

    assert "Customer cus_10733 reached at 2 email addresses" in content
    assert "then at p•••@example.net from" in content
    assert "the newer one is likely the current one" in content
    assert "Confirm the customer's current email address in the CRM" in content
