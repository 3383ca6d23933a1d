import pytest
from django.urls import reverse

from notifwatch.audit.models import AuditEntry
from notifwatch.deliveries.models import DeliveryEvent, NotificationRef
from notifwatch.ingest.models import RawEvent


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


MODELS = [
    "ingest_source",
    "ingest_rawevent",
    "deliveries_notification",
    "deliveries_deliveryevent",
    "deliveries_notificationref",
    "audit_auditentry",
]


def test_it_lists_every_model(client, superuser, retried):
    client.force_login(superuser)
    for name in MODELS:
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name


def test_it_shows_each_object_read_only(client, superuser, retried, inhouse_source):
    objects = {
        "ingest_source": inhouse_source,
        "ingest_rawevent": RawEvent.objects.first(),
        "deliveries_notification": retried,
        "deliveries_deliveryevent": DeliveryEvent.objects.first(),
        "deliveries_notificationref": NotificationRef.objects.first(),
        "audit_auditentry": AuditEntry.objects.first(),
    }
    client.force_login(superuser)
    for name, obj in objects.items():
        response = client.get(reverse(f"admin:{name}_change", args=[obj.pk]))
        assert response.status_code == 200, name
        assert b'type="submit" value="Save"' not in response.content, name


def test_it_shows_the_raw_body_escaped(client, superuser, json_source):
    raw = RawEvent.objects.create(
        source=json_source,
        received_at="2025-03-14T10:00:00Z",
        transport="api",
        body=b'{"x": "<script>alert(1)</script>"}',
        content_hash="h",
    )
    client.force_login(superuser)
    content = client.get(reverse("admin:ingest_rawevent_change", args=[raw.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<script>alert(1)</script>" not in content


def test_it_never_adds_changes_or_deletes_audit_entries(client, superuser, retried):
    entry = AuditEntry.objects.first()
    client.force_login(superuser)
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    response = client.post(
        reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    response = client.post(
        reverse("admin:audit_auditentry_change", args=[entry.pk]), {"action": "forged"}
    )
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.action != "forged"
