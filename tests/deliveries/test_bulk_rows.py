"""Rows written in bulk (COPY on PostgreSQL) fail the way Django's own writes fail."""

import pytest
from django.db import IntegrityError, transaction

from notifwatch.deliveries.bulk import insert_rows
from notifwatch.deliveries.models import NotificationRef
from tests.exceptions.data import event, send

pytestmark = pytest.mark.django_db


def test_a_unique_violation_in_bulk_rows_is_an_integrity_error(json_source):
    # The request path retries on IntegrityError: a raw driver error would skip that retry.
    send(json_source, event("ord-1:email", "delivered", "2025-03-14T10:00:00Z", "cus_1"))
    ref = NotificationRef.objects.first()
    columns = [f.column for f in NotificationRef._meta.concrete_fields]
    row = tuple(getattr(ref, f.attname) for f in NotificationRef._meta.concrete_fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(NotificationRef, columns, [row])
