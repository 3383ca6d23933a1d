"""POST /api/v1/events with hostile or broken bodies: each is kept, explained and refused.

A 2xx tells the sender it may forget the events; anything answered 4xx must be stored as
quarantined with a readable reason, and nothing from it half-recorded.
"""

import json

import pytest

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.models import Outcome, RawEvent

from .test_api_events import event, post

pytestmark = pytest.mark.django_db


def only_raw() -> RawEvent:
    raw = RawEvent.objects.get()
    assert raw.reason, "a quarantined body must say why"
    return raw


def test_it_refuses_one_event_id_under_two_notification_keys_in_a_batch(client, json_source):
    batch = [event(n) for n in range(1, 500)] + [event(7, notification_key="inv-other")]

    response = post(client, json_source, batch)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 499, "field": "event_id", "message": response.json()["errors"][0]["message"]}
    ]
    assert "'inv-7'" in response.json()["error"] and "'inv-other'" in response.json()["error"]
    assert (Notification.objects.count(), DeliveryEvent.objects.count()) == (0, 0)
    assert only_raw().outcome == Outcome.QUARANTINED


def test_it_refuses_a_stored_event_id_resent_under_a_corrected_key(client, json_source):
    assert post(client, json_source, [event(1), event(2)]).status_code == 200

    response = post(client, json_source, [event(3), event(1, notification_key="inv-fixed")])

    assert response.status_code == 422
    assert response.json()["errors"][0]["index"] == 1
    assert response.json()["errors"][0]["field"] == "event_id"
    assert "already used for notification_key 'inv-1'" in response.json()["error"]
    # Nothing of the refused batch, not even its good first item, was recorded.
    assert set(Notification.objects.values_list("notification_key", flat=True)) == {
        "inv-1",
        "inv-2",
    }
    assert RawEvent.objects.filter(outcome=Outcome.QUARANTINED).count() == 1


def test_it_still_counts_a_true_repeat_inside_one_batch_once(client, json_source):
    response = post(client, json_source, [event(1), event(1), event(2)])

    assert response.status_code == 200
    assert response.json()["recorded"] == 2
    assert DeliveryEvent.objects.get(event_id="evt-1").duplicate_count == 1
    assert Notification.objects.get(notification_key="inv-1").duplicate_events == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        pytest.param('{"event_id": "\\ud800"}', 422, "lone surrogate", id="lone-surrogate"),
        pytest.param("[" * 100_000 + "]" * 100_000, 400, "nested too deeply", id="deep-nesting"),
        pytest.param('{"attempt": 1e400}', 400, "too large", id="float-overflow"),
        pytest.param('{"n": ' + "9" * 5000 + "}", 400, "not valid JSON", id="huge-int"),
    ],
)
def test_it_quarantines_a_body_no_database_could_store(client, json_source, body, status, words):
    response = post(client, json_source, body)

    assert response.status_code == status, response.content
    assert words in response.json()["error"]
    raw = only_raw()
    assert raw.outcome == Outcome.QUARANTINED
    assert words in raw.reason


def test_it_names_the_field_that_holds_a_lone_surrogate(client, json_source):
    body = json.dumps([event(1), event(2)]).replace('"cus_1"', '"cus_\\udc00"', 1)

    response = post(client, json_source, body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "customer_id"
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(
    "occurred_at",
    [1e20, 10**30, -1e10, "99999-01-01T00:00:00Z", "9999-12-31T23:59:59-10:00", 0],
)
def test_it_quarantines_an_out_of_range_timestamp(client, json_source, occurred_at):
    response = post(client, json_source, event(occurred_at=occurred_at))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "occurred_at"
    assert only_raw().outcome == Outcome.QUARANTINED


def test_it_refuses_a_nul_character_instead_of_merging_two_keys(client, json_source):
    assert post(client, json_source, event(1, notification_key="qk")).status_code == 200

    response = post(client, json_source, event(2, notification_key="q\u0000k"))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "notification_key"
    assert "NUL" in response.json()["error"]
    assert Notification.objects.get().notification_key == "qk"


def test_it_refuses_a_nul_character_in_a_field_it_does_not_map(client, json_source):
    response = post(client, json_source, [event(1), event(2, note="a\u0000b")])

    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "index": 1,
        "field": "note",
        "message": "contains a NUL character (\\u0000), which cannot be stored as text",
    }


def test_it_keeps_a_literal_backslash_u0000_text(client, json_source):
    response = post(client, json_source, event(1, error_message="path C:\\u0000x"))

    assert response.status_code == 200
    assert DeliveryEvent.objects.get().error_message == "path C:\\u0000x"


def test_it_keeps_a_megabyte_of_nonsense_out_of_the_stored_reason(client, json_source):
    huge = "for ana.ruiz@example.com: " + "a" * 1_000_000

    batch = [event(0, attempt=huge)] + [event(n, attempt="x") for n in range(1, 300)]

    response = post(client, json_source, batch)

    assert response.status_code == 422
    raw = only_raw()
    assert len(raw.reason) < 5_000 and "and 295 more" in raw.reason
    assert len(raw.problems) == 100
    assert all(len(p["message"]) <= 500 for p in raw.problems)
    assert len(response.content) < 100_000


def test_it_refuses_an_event_with_more_references_than_any_notification_has(client, json_source):
    refs = {f"ref_{n}": str(n) for n in range(51)}

    response = post(client, json_source, event(refs=refs))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "refs"
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(
    ("key", "shown"), [("\u0000\u0000", "\\u0000\\u0000"), ("\ud800", "\\ud800")]
)
def test_it_names_an_unstorable_key_in_words_that_can_be_stored(client, json_source, key, shown):
    body = json.dumps(event(1, refs={key: "x"}))

    response = post(client, json_source, body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"refs.{shown}"
    raw = only_raw()
    assert raw.outcome == Outcome.QUARANTINED
    assert raw.problems[0]["field"] == f"refs.{shown}"
