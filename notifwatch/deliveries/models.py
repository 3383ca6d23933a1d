from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    IN_APP = "in_app", "In-app"
    WEBHOOK = "webhook", "Webhook"
    OTHER = "other", "Other"


class EventType(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    COMPLAINED = "complained", "Complained"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"


class FinalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    COMPLAINED = "complained", "Complained"


class IdentityProblem(models.TextChoices):
    NONE = "", "None"
    MISSING_CUSTOMER_ID = "missing_customer_id", "No customer id"
    UNMATCHED_CALLBACK = "unmatched_callback", "Provider callback matching no send record"


class Notification(models.Model):
    """One logical message to one recipient, identified by its key within its source."""

    source = models.ForeignKey(
        "ingest.Source", on_delete=models.CASCADE, related_name="notifications"
    )
    notification_key = models.CharField(max_length=255)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.OTHER)
    purpose = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    recipient = models.CharField(max_length=320, blank=True)
    refs = models.JSONField(default=dict, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)

    final_status = models.CharField(
        max_length=16, choices=FinalStatus.choices, default=FinalStatus.PENDING
    )
    first_event_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    event_count = models.PositiveIntegerField(default=0)
    # Repeated copies of events already recorded (provider retries, re-posts).
    duplicate_events = models.PositiveIntegerField(default=0)
    # Extra distinct deliveries of the same notification: the customer got it more than once.
    duplicate_sends = models.PositiveIntegerField(default=0)
    # Created from a provider callback with no send record (yet): adopted when one arrives.
    callback_only = models.BooleanField(default=False)
    identity_problem = models.CharField(
        max_length=32, choices=IdentityProblem.choices, blank=True, default=""
    )

    reason_key = models.CharField(max_length=100, blank=True)
    reason_category = models.CharField(max_length=32, blank=True)
    permanent = models.BooleanField(null=True, blank=True)
    fix_owner = models.CharField(max_length=32, blank=True)
    counts_as_failure = models.BooleanField(default=False)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "notification_key"], name="notification_key_per_source"
            )
        ]
        indexes = [
            models.Index(fields=["customer_id"], name="notif_customer"),
            models.Index(fields=["recipient"], name="notif_recipient"),
            models.Index(fields=["notification_key"], name="notif_key"),
            models.Index(fields=["provider_message_id"], name="notif_provider_msg"),
            models.Index(fields=["final_status", "last_event_at"], name="notif_status_last"),
            models.Index(fields=["last_event_at", "id"], name="notif_last_event"),
            # The overview counts the edges of its period live, and its rollup recounts the
            # periods that changed: both find notifications by when they started or changed.
            models.Index(fields=["first_event_at"], name="notif_first_event"),
            models.Index(fields=["updated_at"], name="notif_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.notification_key} ({self.final_status})"


class NotificationRef(models.Model):
    """A business reference (order, ticket, invoice id) of a notification, for lookups."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="ref_rows"
    )
    name = models.CharField(max_length=64)
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "name", "value"], name="notification_ref_once"
            )
        ]
        indexes = [models.Index(fields=["value"], name="notif_ref_value")]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class DeliveryEvent(models.Model):
    """One thing that happened to a notification, as its source reported it."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="events")
    source = models.ForeignKey("ingest.Source", on_delete=models.CASCADE, related_name="+")
    raw_event = models.ForeignKey(
        "ingest.RawEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    item_index = models.PositiveIntegerField(default=0)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=16, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    attempt = models.PositiveIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    reason_key = models.CharField(max_length=100, blank=True)
    reason_category = models.CharField(max_length=32, blank=True)
    permanent = models.BooleanField(null=True, blank=True)
    duplicate_count = models.PositiveIntegerField(default=0)
    # The source's own record, kept only when the raw event held several of them.
    payload = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            # Idempotent ingest: a source's event id is recorded once, whatever retries happen.
            models.UniqueConstraint(fields=["source", "event_id"], name="delivery_event_once")
        ]
        indexes = [
            models.Index(fields=["notification", "occurred_at"], name="event_notif_time"),
            models.Index(fields=["provider_message_id"], name="event_provider_msg"),
            # Exports stream events in this order without a sort.
            models.Index(fields=["occurred_at", "id"], name="event_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} @ {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class OutcomeCounts(models.Model):
    """How many notifications ended in each final status, and with each kind of problem
    (counts.COUNTED, in that order)."""

    pending = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    identity = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class NotificationCount(OutcomeCounts):
    """How the notifications that started in one 15-minute period ended, per source and channel.

    Derived data: the overview's rollup, recounted by `counts.refresh_notification_counts`
    (never edited by hand, never audited). Quarter hours, so that 3-hour chart buckets line up
    with local time in every time zone (India is UTC+5:30, Nepal UTC+5:45).
    """

    period_start = models.DateTimeField()
    source = models.ForeignKey("ingest.Source", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period_start", "source", "channel"], name="notification_count_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period_start:%Y-%m-%d %H:%M} {self.channel}"


class NotificationPeriodTotal(OutcomeCounts):
    """The NotificationCount rows of one period added up: what the overview's charts read
    (768 rows a week instead of one per period, source and channel). Derived, like them."""

    period_start = models.DateTimeField(unique=True)

    def __str__(self) -> str:
        return f"{self.period_start:%Y-%m-%d %H:%M}"


class NotificationCountMark(models.Model):
    """When the rollup was last recounted: one row, also the lock two recounts queue on."""

    refreshed_at = models.DateTimeField(null=True, blank=True)
    full_refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"counts recounted at {self.refreshed_at}"
