"""Alerts: who wants to hear about what, and every message recorded before it is sent."""

from django.db import models
from django.db.models import Q


class AlertKind(models.TextChoices):
    ASSIGNED = "assigned", "An exception is assigned to me or my team"
    NEW_EXCEPTION = "new_exception", "A new exception passes its impact threshold"
    SILENCE = "silence", "A source went silent"
    REGRESSED = "regressed", "A resolved exception came back"
    WOKE = "woke", "A snoozed exception woke up"
    HEALTH = "health", "notifwatch itself is not healthy"
    WEEKLY_DIGEST = "weekly_digest", "The weekly review digest"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    # Slack-compatible incoming-webhook JSON ({"text": ...}): Mattermost, Rocket.Chat, Teams
    # workflows accept it too.
    CHAT = "chat", "Chat webhook"
    # A signed JSON POST (Standard Webhooks) for a ticket tracker or an iPaaS.
    WEBHOOK = "webhook", "Outgoing webhook"


class Timing(models.TextChoices):
    IMMEDIATE = "immediate", "Right away"
    DAILY = "daily", "In a daily digest"


class Scope(models.TextChoices):
    MINE = "mine", "Exceptions owned by me or my teams"
    ALL = "all", "Every exception"


class Subscription(models.Model):
    """What one user, or one team, receives and how.

    A team's subscriptions carry the team's own channel (a shared mailbox, a team chat room);
    a user's reach that user. `scope` says whose exceptions a user hears about; a team hears
    about the exceptions it owns.
    """

    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subscriptions",
    )
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # An email address (blank: the user's own) or the URL to POST to.
    target = models.CharField(max_length=500, blank=True)
    # The outgoing webhook's Standard Webhooks secret (whsec_...).
    secret = models.CharField(max_length=200, blank=True)
    timing = models.CharField(max_length=16, choices=Timing.choices, default=Timing.IMMEDIATE)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.MINE)
    # The weekly digest: weekday (Monday 0) and hour in the user's time zone.
    digest_weekday = models.PositiveSmallIntegerField(default=0)
    digest_hour = models.PositiveSmallIntegerField(default=8)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True)
                | Q(user__isnull=True, team__isnull=False),
                name="subscription_user_or_team",
            ),
        ]

    def __str__(self) -> str:
        who = self.user or self.team
        return f"{who}: {self.get_kind_display()} by {self.get_channel_display()}"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    HELD = "held", "Held for the daily digest"
    SENT = "sent", "Sent"
    FAILED = "failed", "Could not be sent"


class Alert(models.Model):
    """One message to one subscription, recorded before it is sent.

    `key` names what happened, to whom and which occurrence of it: its unique constraint makes
    a second worker, or a retried task, find the alert already there instead of sending twice.
    """

    key = models.CharField(max_length=300, unique=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    group = models.ForeignKey(
        "failures.FailureGroup",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    subject = models.CharField(max_length=300)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    # What an outgoing webhook posts (and a chat message is built from), beside the words.
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A held alert, once it went out inside a daily digest: that digest.
    digest = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="included"
    )

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="alert_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.subscription_id}: {self.subject}"


class AlertCursor(models.Model):
    """How far a trigger job has read a growing table (the last row id it handled).

    `start` is where it stood at the job's first run: rows from before it never alert, so a
    first start over an old history does not flood everybody.
    """

    name = models.CharField(max_length=64, unique=True)
    position = models.BigIntegerField(default=0)
    start = models.BigIntegerField(default=0)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
