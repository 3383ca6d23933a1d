from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from notifwatch.ingest.models import Outcome, RawEvent

URL = reverse("api_sources")


def test_it_tells_each_sources_health(api_get, viewer, imported, inhouse_source, json_source):
    imported("01_retry_503_timeout_then_delivered.jsonl", "05_malformed_and_edge_lines.jsonl")
    quarantined = RawEvent.objects.filter(source=inhouse_source, outcome=Outcome.QUARANTINED)
    parsed = RawEvent.objects.filter(source=inhouse_source, outcome=Outcome.PARSED)

    items = {item["slug"]: item for item in api_get(URL, viewer)["items"]}

    inhouse = items["inhouse"]
    assert inhouse["kind"] == "json"
    assert inhouse["last_received"] is not None
    assert inhouse["last_24_hours"][Outcome.PARSED] == parsed.count()
    assert inhouse["last_24_hours"][Outcome.QUARANTINED] == quarantined.count() > 0
    assert inhouse["waiting"] == {"quarantined": quarantined.count(), "failed": 0}
    assert inhouse["url"].endswith(reverse("source_detail", args=["inhouse"]))
    billing = items["billing"]
    assert billing["last_received"] is None and billing["last_24_hours"] == {}


def test_it_counts_refused_calls(api_get, client, viewer, json_source):
    for _ in range(2):
        client.post(
            reverse("source_webhook", args=[json_source.slug]),
            b"{}",
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer nw_wrong",
        )

    (billing,) = api_get(URL, viewer)["items"]

    assert billing["rejected_calls_last_7_days"]["count"] == 2
    assert billing["rejected_calls_last_7_days"]["last_reason"]
    assert billing["last_24_hours"] == {Outcome.REJECTED: 2}


def test_it_leaves_events_older_than_a_day_out_of_the_last_24_hours(
    api_get, viewer, imported, inhouse_source
):
    imported("01_retry_503_timeout_then_delivered.jsonl")
    RawEvent.objects.filter(source=inhouse_source).update(
        received_at=timezone.now() - timedelta(days=2)
    )

    (inhouse,) = api_get(URL, viewer)["items"]

    assert inhouse["last_24_hours"] == {}
    assert inhouse["last_received"] is not None
