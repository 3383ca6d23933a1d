import json
import re

import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import give_up_on_raw_event, save_source
from notifwatch.ingest.credentials import credential_hash
from notifwatch.ingest.importer import import_path
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.presets import load_preset
from notifwatch.ingest.processing import store_raw

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def renamed_field_source(db, fixture_path):
    """The sender renamed `ts` upstream: the preset mapping quarantines every line."""
    mapping = load_preset("inhouse_log")
    mapping["fields"]["occurred_at"] = "timestamp"
    source = save_source(slug="renamed", kind="json", name="Renamed sender", mapping=mapping).source
    import_path(source, str(fixture_path("inhouse", "01_retry_503_timeout_then_delivered.jsonl")))
    return source


def detail(source: Source) -> str:
    return reverse("source_detail", args=[source.slug])


def test_it_shows_quarantined_events_with_reason_and_line(client, viewer, renamed_field_source):
    client.force_login(viewer)

    response = client.get(detail(renamed_field_source))

    assert response.status_code == 200
    content = response.content.decode()
    raws = RawEvent.objects.filter(source=renamed_field_source).order_by("line_number")
    assert [r.outcome for r in raws] == [Outcome.QUARANTINED] * 3
    for raw in raws:
        assert reverse("raw_event_detail", args=[raw.pk]) in content
    assert "01_retry_503_timeout_then_delivered.jsonl:2" in content
    assert "timestamp: missing (maps to occurred_at)" in content


def test_it_shows_the_mapping_pretty_printed(client, viewer, renamed_field_source):
    client.force_login(viewer)
    content = client.get(detail(renamed_field_source)).content.decode()
    assert "&quot;occurred_at&quot;: &quot;timestamp&quot;," in content
    assert '\n  "fields": {' in json.dumps(renamed_field_source.mapping, indent=2)
    assert "\n  &quot;fields&quot;: {" in content


def test_it_gives_admins_the_edit_form_and_buttons(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    content = client.get(detail(inhouse_source)).content.decode()
    assert 'name="mapping"' in content
    assert reverse("source_reprocess", args=["inhouse"]) in content
    assert reverse("source_rotate_token", args=["inhouse"]) in content


def test_it_404s_for_an_unknown_source(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("source_detail", args=["nope"])).status_code == 404


def test_it_shows_invalid_json_next_to_the_field_and_changes_nothing(
    client, admin_user, renamed_field_source
):
    before = renamed_field_source.mapping
    audit_count = AuditEntry.objects.count()
    client.force_login(admin_user)

    response = client.post(
        reverse("source_mapping", args=["renamed"]), {"mapping": '{"fields": {"status": }'}
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="mapping-errors"' in content
    assert "This is not valid JSON: Expecting value (line 1, column 23)." in content
    # The admin's text is kept, so the typo can be fixed in place.
    assert "{&quot;fields&quot;: {&quot;status&quot;: }" in content
    renamed_field_source.refresh_from_db()
    assert renamed_field_source.mapping == before
    assert AuditEntry.objects.count() == audit_count


def test_it_shows_mapping_errors_in_words(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    response = client.post(
        reverse("source_mapping", args=["inhouse"]),
        {"mapping": '{"fields": {"sent_at": "ts"}}'},
        **HTMX,
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" not in content
    assert content.strip().startswith('<section class="panel" id="mapping">')
    assert "&#x27;sent_at&#x27; is not a canonical field" in content


def test_it_saves_a_valid_mapping_with_an_audit_entry(client, admin_user, renamed_field_source):
    fixed = load_preset("inhouse_log")
    client.force_login(admin_user)

    response = client.post(
        reverse("source_mapping", args=["renamed"]), {"mapping": json.dumps(fixed)}
    )

    assert response.status_code == 302
    assert response["Location"] == detail(renamed_field_source)
    renamed_field_source.refresh_from_db()
    assert renamed_field_source.mapping == fixed
    entry = AuditEntry.objects.get(action="source.mapping_changed")
    assert entry.actor == admin_user
    assert entry.target_id == str(renamed_field_source.pk)
    assert entry.new == fixed


def test_it_saves_over_htmx_and_returns_the_fragment(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    response = client.post(
        reverse("source_mapping", args=["inhouse"]), {"mapping": '{"fields": {}}'}, **HTMX
    )
    assert response.status_code == 200
    assert b"Mapping saved" in response.content
    assert b"<html" not in response.content
    inhouse_source.refresh_from_db()
    assert inhouse_source.mapping == {"fields": {}}


def test_it_reprocesses_quarantined_events_after_the_fix(client, admin_user, renamed_field_source):
    client.force_login(admin_user)
    client.post(
        reverse("source_mapping", args=["renamed"]),
        {"mapping": json.dumps(load_preset("inhouse_log"))},
    )

    response = client.post(reverse("source_reprocess", args=["renamed"]), follow=True)

    assert response.redirect_chain == [(detail(renamed_field_source), 302)]
    assert "Reprocessing 3 quarantined events…" in response.content.decode()
    raws = RawEvent.objects.filter(source=renamed_field_source)
    assert {r.outcome for r in raws} == {Outcome.PARSED}
    notification = Notification.objects.get(source=renamed_field_source)
    assert notification.final_status == "delivered"
    assert AuditEntry.objects.filter(action="source.reprocessed", actor=admin_user).exists()
    # The run's counts stay on the page.
    assert "by alice: 3 events tried — 3 fixed, 0 still quarantined, 0 failed." in (
        response.content.decode()
    )


def test_it_reprocesses_over_htmx(client, admin_user, renamed_field_source):
    client.force_login(admin_user)
    response = client.post(reverse("source_reprocess", args=["renamed"]), **HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert content.strip().startswith('<section class="panel" id="quarantine">')
    # Still quarantined: the mapping was not fixed.
    assert "Reprocessing 3 quarantined events…" in content
    assert "Raw event #" in content
    # The counts at the top of the page are refreshed alongside.
    assert '<div id="stats" hx-swap-oob="true">' in content


def test_it_counts_and_lists_raw_events_that_could_not_be_processed(client, viewer, json_source):
    raw = store_raw(json_source, Transport.API, b'{"recipient": "pat@example.com"}')
    RawEvent.objects.filter(pk=raw.pk).update(attempts=5)
    give_up_on_raw_event(raw.pk, 5, "OperationalError: pat@example.com locked")
    client.force_login(viewer)

    content = client.get(detail(json_source)).content.decode()

    assert '<div class="stat-n">1</div><div class="stat-l">could not be processed' in content
    assert reverse("raw_event_detail", args=[raw.pk]) in content
    assert "could not be processed after 5 attempts (OperationalError: p" in content
    assert "pat@example.com" not in content  # the reason is masked for a viewer


def test_it_says_when_there_is_nothing_to_reprocess(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    response = client.post(reverse("source_reprocess", args=["inhouse"]), follow=True)
    assert "Nothing to reprocess" in response.content.decode()
    assert not AuditEntry.objects.filter(action="source.reprocessed").exists()


def test_it_refuses_get_on_post_actions(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    assert client.get(reverse("source_mapping", args=["inhouse"])).status_code == 405
    assert client.get(reverse("source_reprocess", args=["inhouse"])).status_code == 405


def test_it_asks_before_rotating_the_token(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    response = client.get(reverse("source_rotate_token", args=["inhouse"]))
    assert response.status_code == 200
    assert "stops working at once" in response.content.decode()
    inhouse_source.refresh_from_db()
    assert inhouse_source.credential_hash == credential_hash(inhouse_source.token)


def test_it_shows_the_new_token_once(client, admin_user, inhouse_source):
    old_token = inhouse_source.token
    client.force_login(admin_user)

    response = client.post(reverse("source_rotate_token", args=["inhouse"]))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    new_token = response.context["new_token"]
    assert new_token in response.content.decode()
    source = Source.objects.get(pk=inhouse_source.pk)
    assert source.credential_hash == credential_hash(new_token)
    assert source.credential_hash != credential_hash(old_token)
    assert new_token not in json.dumps(list(Source.objects.values()), default=str)
    assert AuditEntry.objects.filter(action="source.token_rotated", actor=admin_user).exists()
    # Never again: the detail page shows the hint only.
    content = client.get(detail(source)).content.decode()
    assert new_token not in content
    assert source.credential_hint in content


def test_it_rotates_over_htmx_into_the_credential_fragment(client, admin_user, inhouse_source):
    client.force_login(admin_user)
    response = client.post(reverse("source_rotate_token", args=["inhouse"]), **HTMX)
    content = response.content.decode()
    assert content.strip().startswith('<div id="credential">')
    (new_token,) = re.findall(r"<code>(nw_[\w-]{20,})</code>", content)
    inhouse_source.refresh_from_db()
    assert inhouse_source.credential_hash == credential_hash(new_token)


def test_it_does_not_rotate_provider_secrets(client, admin_user, db):
    source = save_source(slug="sg", kind="sendgrid", secret="hooks:pw-long-enough").source
    client.force_login(admin_user)
    response = client.post(reverse("source_rotate_token", args=["sg"]))
    assert response.status_code == 400
    source.refresh_from_db()
    assert source.credential_hash == credential_hash("hooks:pw-long-enough")
