from django.db import models
from django.db.models import Q


class SourceKind(models.TextChoices):
    JSON = "json", "JSON (canonical or mapped)"
    CSV = "csv", "CSV export"
    SENDGRID = "sendgrid", "SendGrid"
    POSTMARK = "postmark", "Postmark"
    MAILGUN = "mailgun", "Mailgun"
    SES = "ses", "Amazon SES"
    TWILIO = "twilio", "Twilio"
    # The other email providers whose tracking webhooks django-anymail parses.
    BREVO = "brevo", "Brevo"
    MAILERSEND = "mailersend", "MailerSend"
    MAILJET = "mailjet", "Mailjet"
    MAILTRAP = "mailtrap", "Mailtrap"
    MANDRILL = "mandrill", "Mandrill"
    POSTAL = "postal", "Postal"
    RESEND = "resend", "Resend"
    SPARKPOST = "sparkpost", "SparkPost"
    UNISENDER_GO = "unisender_go", "Unisender Go"


class Source(models.Model):
    """One system that reports notification events."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=SourceKind.choices)
    # Bearer tokens and basic-auth pairs are only ever compared, so only their hash is kept.
    credential_hash = models.CharField(max_length=64, blank=True, db_index=True)
    credential_hint = models.CharField(max_length=32, blank=True)
    # HMAC kinds (Mailgun signing key, Twilio auth token) need the secret itself.
    # (A TextField: Postal's public keys run past a kilobyte.)
    signing_key = models.TextField(blank=True)
    mapping = models.JSONField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name or self.slug


class Transport(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    IMPORT = "import", "Import"


class Outcome(models.TextChoices):
    RECEIVED = "received", "Received, not yet processed"
    PARSED = "parsed", "Parsed"
    DUPLICATE = "duplicate", "Duplicate"
    IGNORED = "ignored", "Ignored (not a delivery event)"
    QUARANTINED = "quarantined", "Quarantined"
    REJECTED = "rejected", "Rejected"
    # Processing crashed (a bug, the database failing mid-way) on every automatic retry.
    FAILED = "failed", "Could not be processed; kept for inspection"


class RawEvent(models.Model):
    """Exactly what arrived, stored before anything is interpreted."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="raw_events")
    received_at = models.DateTimeField()
    transport = models.CharField(max_length=16, choices=Transport.choices)
    content_type = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField()
    content_hash = models.CharField(max_length=64)
    # For imports: which file and line this came from, so errors can name the line.
    import_name = models.CharField(max_length=255, blank=True)
    line_number = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    # [{"index": 0, "field": "occurred_at", "message": "..."}] for quarantined bodies.
    problems = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    event_count = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Automatic retries of a row a crash left `received` (ingest.tasks.retry_unprocessed_raw_events).
    # Database defaults too: the importer writes raw rows with an explicit column list.
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="", db_default="")
    # Set when retention removed the payload; the row (outcome, reason, hash) stays for counts
    # and so that a re-import of an old file is still recognised.
    payload_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Re-importing the same file must add nothing: one row per distinct import line.
            models.UniqueConstraint(
                fields=["source", "content_hash"],
                condition=Q(transport="import"),
                name="raw_import_line_once",
            )
        ]
        indexes = [
            models.Index(fields=["source", "received_at"], name="raw_source_received"),
            models.Index(fields=["source", "outcome", "received_at"], name="raw_source_outcome"),
            # The worker's retry pass reads the few rows still `received`, not the whole table.
            models.Index(
                fields=["received_at"], condition=Q(outcome="received"), name="raw_waiting"
            ),
        ]

    def __str__(self) -> str:
        return f"raw #{self.pk} {self.source_id} {self.outcome}"

    @property
    def origin(self) -> str:
        if self.import_name:
            return f"{self.import_name}:{self.line_number}"
        return self.get_transport_display()

    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")


class RefusedCallTally(models.Model):
    """Refused calls counted but not stored: a flood of unsigned calls must not fill the raw
    table. The first calls of each hour are kept as rejected raw events to inspect; the rest
    only add to this hour's count (an upsert in SQL)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="refused_tallies")
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField()
    last_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "hour"], name="refused_tally_once_per_hour")
        ]

    def __str__(self) -> str:
        return f"{self.source_id} {self.hour:%Y-%m-%d %H}:00 {self.count} refused, not stored"


class UsedWebhookToken(models.Model):
    """The one-time token of a signed webhook call, kept while its timestamp is still accepted.

    Mailgun signs only a timestamp and a token, not the body: a captured signature could carry
    any events. Each token is accepted once per source (the unique constraint decides, whatever
    the worker or thread), and a timestamp outside the window is refused anyway, so a token is
    forgotten once it is older than the window (retention's prune).
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    # SHA-256 of the token: a fixed size whatever the caller sends (the signature covers it,
    # not its length or characters).
    token_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "token_hash"], name="webhook_token_once")
        ]
        # Pruning deletes by age.
        indexes = [models.Index(fields=["signed_at"], name="webhook_token_signed_at")]

    def __str__(self) -> str:
        return (
            f"{self.source_id} token {self.token_hash[:12]}… signed {self.signed_at:%Y-%m-%d %H:%M}"
        )
