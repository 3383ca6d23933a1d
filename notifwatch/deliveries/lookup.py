"""Finding notifications from the one thing a support agent has at hand."""

import re

from django.db.models import QuerySet

from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.ingest.canonical import normalise_recipient

PHONE_LIKE = re.compile(r"\+?[\d\s().-]{7,20}")


def spellings(q: str) -> set[str]:
    """The ways the same id may be stored: as typed, case-folded, Mailgun's <...> brackets."""
    found = {q, q.lower(), q.upper()}
    if "@" in q:
        found.add(q[1:-1] if q.startswith("<") and q.endswith(">") else f"<{q}>")
    return found


def recipient_spellings(q: str) -> set[str]:
    """Recipients are stored normalised: emails lower-case, phone numbers in E.164."""
    found = {q, q.lower()}
    if "@" not in q and PHONE_LIKE.fullmatch(q):
        found.add(normalise_recipient(q, "sms"))
    return found


def find_notifications(q: str) -> QuerySet[Notification]:
    """Notifications matching `q` exactly on any indexed identifier, newest activity first."""
    q = q.strip()
    if not q:
        return Notification.objects.none()
    ids = spellings(q)
    # Each branch is an equality lookup on its own index; the union keeps every branch
    # index-only, where one OR over several columns would scan the whole table.
    matches = (
        Notification.objects.filter(customer_id__in=ids)
        .values("id")
        .union(
            Notification.objects.filter(recipient__in=recipient_spellings(q)).values("id"),
            Notification.objects.filter(notification_key__in=ids).values("id"),
            Notification.objects.filter(provider_message_id__in=ids).values("id"),
            NotificationRef.objects.filter(value__in=ids).values("notification_id"),
            DeliveryEvent.objects.filter(provider_message_id__in=ids).values("notification_id"),
        )
    )
    return recorded_notifications().filter(pk__in=matches)


def recorded_notifications() -> QuerySet[Notification]:
    """Every notification with an event, newest activity first: what the filters list alone.

    Recorded notifications always have events; the keyset paging needs their time. The order
    is the (last_event_at, id) index read backwards, so a page costs the same at any depth.
    """
    return (
        Notification.objects.filter(last_event_at__isnull=False)
        .select_related("source")
        .order_by("-last_event_at", "-id")
    )
