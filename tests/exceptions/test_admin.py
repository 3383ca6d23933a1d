import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import add_note
from notifwatch.failures.models import Fingerprint, GroupHistory, Occurrence, OwnerRule

READ_ONLY = ["failuregroup", "fingerprint", "occurrence", "grouphistory"]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


def test_it_lists_every_exception_model(client, superuser, bounced, teams):
    OwnerRule.objects.create(team=teams["Billing"])
    client.force_login(superuser)
    for name in [*READ_ONLY, "ownerrule", "timingwindow"]:
        response = client.get(reverse(f"admin:failures_{name}_changelist"))
        assert response.status_code == 200, name


def test_it_shows_exceptions_and_their_history_read_only(client, superuser, reviewer, bounced):
    add_note(bounced, "checked", actor=reviewer)
    objects = {
        "failuregroup": bounced,
        "fingerprint": Fingerprint.objects.first(),
        "occurrence": Occurrence.objects.first(),
        "grouphistory": GroupHistory.objects.last(),
    }
    client.force_login(superuser)
    for name, obj in objects.items():
        response = client.get(reverse(f"admin:failures_{name}_change", args=[obj.pk]))
        assert response.status_code == 200, name
        assert b'type="submit" value="Save"' not in response.content, name
        assert client.get(reverse(f"admin:failures_{name}_add")).status_code == 403, name


def test_it_never_edits_or_deletes_history(client, superuser, reviewer, bounced):
    entry = add_note(bounced, "checked", actor=reviewer)
    client.force_login(superuser)
    change = reverse("admin:failures_grouphistory_change", args=[entry.pk])
    assert client.post(change, {"comment": "forged"}).status_code == 403
    delete = reverse("admin:failures_grouphistory_delete", args=[entry.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.comment == "checked"


def test_it_audits_owner_rule_changes(client, superuser, teams):
    client.force_login(superuser)

    response = client.post(
        reverse("admin:failures_ownerrule_add"),
        {"position": "10", "team": teams["CRM admins"].pk, "fix_owner": "recipient_data"},
    )

    assert response.status_code == 302
    rule = OwnerRule.objects.get()
    created = AuditEntry.objects.get(action="ownerrule.created")
    assert (created.actor, created.target_id) == (superuser, str(rule.pk))
    assert created.new["team"] == teams["CRM admins"].pk

    client.post(
        reverse("admin:failures_ownerrule_change", args=[rule.pk]),
        {"position": "5", "team": teams["Billing"].pk, "fix_owner": "recipient_data"},
    )
    changed = AuditEntry.objects.get(action="ownerrule.changed")
    assert changed.old == {"position": 10, "team": teams["CRM admins"].pk}
    assert changed.new == {"position": 5, "team": teams["Billing"].pk}

    client.post(reverse("admin:failures_ownerrule_delete", args=[rule.pk]), {"post": "yes"})
    assert not OwnerRule.objects.exists()
    assert AuditEntry.objects.filter(action="ownerrule.deleted", target_id=str(rule.pk)).exists()
