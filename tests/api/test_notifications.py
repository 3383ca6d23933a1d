import pytest
from django.urls import reverse

from notifwatch.deliveries.models import Notification
from tests.exceptions.data import bounce, event, send

URL = reverse("api_notifications")


@pytest.fixture
def week(json_source):
    """cus_1: an order confirmation bounced, then delivered by SMS; a shipping notice delivered.
    cus_2: one delivered. A ticket update without an order for cus_1."""
    send(
        json_source,
        bounce("ord-1:email", "2025-03-14T10:00:00Z", "cus_1"),
        event(
            "ord-1:sms",
            "delivered",
            "2025-03-14T10:06:00Z",
            "cus_1",
            channel="sms",
            recipient="+14155550118",
        ),
        event(
            "ship-1:email", "delivered", "2025-03-15T08:00:00Z", "cus_1", purpose="shipping_notice"
        ),
        event("ord-2:email", "delivered", "2025-03-14T11:00:00Z", "cus_2"),
    )
    return Notification.objects.filter(source=json_source)


def keys(answer: dict) -> list[str]:
    return [item["notification_key"] for item in answer["items"]]


def test_it_answers_did_this_customer_get_it_newest_first(api_get, viewer, week):
    answer = api_get(URL, viewer, customer_id="cus_1")

    assert keys(answer) == ["ship-1:email", "ord-1:sms", "ord-1:email"]
    bounced = answer["items"][2]
    assert bounced["final_status"] == "bounced"
    assert bounced["verdict"]["tone"] == "bad"
    assert bounced["verdict"]["headline"].startswith("Not delivered: ")
    assert bounced["verdict"]["error_code"] == "550"
    assert bounced["counts_as_failure"] is True
    assert bounced["refs"] == {"order_id": "ORD-ord-1:email"}
    assert bounced["channel"] == "email" and bounced["purpose"] == "order_confirmation"
    assert bounced["attempts"] == 1
    assert bounced["settled_at"] == "2025-03-14T10:00:00Z"
    assert answer["items"][1]["verdict"]["headline"] == "Delivered on the first attempt"
    assert "next" not in answer


def test_it_finds_them_by_order_id(api_get, viewer, week):
    answer = api_get(URL, viewer, order_id="ORD-ord-2:email")

    assert keys(answer) == ["ord-2:email"]
    assert answer["items"][0]["customer_id"] == "cus_2"


def test_it_finds_them_by_recipient_as_the_search_page_spells_it(api_get, reviewer, week):
    answer = api_get(URL, reviewer, recipient="+1 (415) 555-0118")

    assert keys(answer) == ["ord-1:sms"]


def test_it_narrows_with_several_identifiers_and_the_search_filters(api_get, viewer, week):
    both = api_get(URL, viewer, customer_id="cus_1", order_id="ORD-ord-1:email")
    by_channel = api_get(URL, viewer, customer_id="cus_1", channel="sms")

    assert keys(both) == ["ord-1:email"]
    assert keys(by_channel) == ["ord-1:sms"]


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("viewer", "c•••@example.com"),
        ("auditor", "c•••@example.com"),
        ("reviewer", "cus_2@example.com"),
        ("admin_user", "cus_2@example.com"),
    ],
)
def test_it_masks_recipients_for_roles_without_personal_data(api_get, request, week, role, shown):
    user = request.getfixturevalue(role)

    (item,) = api_get(URL, user, customer_id="cus_2")["items"]

    assert item["recipient"] == shown


def test_it_pages_by_cursor_without_repeats_or_gaps(client, bearer, viewer, json_source):
    send(
        json_source,
        *(event(f"n-{i}", "delivered", f"2025-03-14T10:{i:02d}:00Z", "cus_9") for i in range(7)),
        # Two at the same moment: the id orders them.
        event("same-a", "delivered", "2025-03-14T10:03:00Z", "cus_9"),
    )
    headers = bearer(viewer)
    seen, url, params = [], URL, {"customer_id": "cus_9", "limit": 3}
    while url:
        answer = client.get(url, params, **headers).json()
        seen += keys(answer)
        url, params = answer.get("next"), {}

    assert len(seen) == 8 == len(set(seen))
    assert seen[0] == "n-6" and seen[-1] == "n-0"


def test_it_asks_for_an_identifier(api_get, viewer, week):
    answer = api_get(URL, viewer, expect=400, channel="email")

    assert "customer_id" in answer["error"]


def test_it_refuses_a_cursor_or_filter_it_cannot_read(api_get, viewer, week):
    assert "cursor" in api_get(URL, viewer, expect=400, customer_id="cus_1", before="x")["error"]
    assert "status" in api_get(URL, viewer, expect=400, customer_id="c", status="nope")["errors"]
