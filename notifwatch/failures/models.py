from django.db import models


class UnknownCode(models.Model):
    """A provider code the reason catalog does not know yet: counted so the catalog can grow."""

    provider = models.CharField(max_length=64)
    code = models.CharField(max_length=100)
    occurrences = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    sample_message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "code"], name="unknown_code_once")
        ]
        ordering = ["-occurrences"]

    def __str__(self) -> str:
        return f"{self.provider}:{self.code} ×{self.occurrences}"


class Kind(models.TextChoices):
    DELIVERY_FAILURE = "delivery_failure", "Delivery failure"
    LATE = "late", "Late"
    DUPLICATE_SEND = "duplicate_send", "Duplicate send"
    IDENTITY = "identity", "Identity problem"
    MAPPING_BREAK = "mapping_break", "Mapping break"
    SILENCE = "silence", "Silence"
    REJECTED_WEBHOOKS = "rejected_webhooks", "Rejected webhooks"


class Status(models.TextChoices):
    NEW = "new", "New"
    ASSIGNED = "assigned", "Assigned"
    RESOLVED = "resolved", "Resolved"
    ACCEPTED = "accepted", "Accepted (expected)"
    SNOOZED = "snoozed", "Snoozed"
    REGRESSED = "regressed", "Regressed"


OPEN_STATUSES = (Status.NEW, Status.ASSIGNED, Status.REGRESSED)


class FailureGroupQuerySet(models.QuerySet):
    def open_for_review(self):
        return self.filter(status__in=OPEN_STATUSES, merged_into__isnull=True)


class FailureGroup(models.Model):
    """An exception: problems that need one human decision, with one owner."""

    kind = models.CharField(max_length=32, choices=Kind.choices)
    title = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    # What the problems share (also what owner rules match on).
    source = models.ForeignKey(
        "ingest.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=16, blank=True)
    purpose = models.CharField(max_length=200, blank=True)
    reason_category = models.CharField(max_length=32, blank=True)
    fix_owner = models.CharField(max_length=32, blank=True)
    reason_key = models.CharField(max_length=100, blank=True)
    # Kind-specific facts: the quarantined field, the silent window, the likely duplicate cause.
    detail = models.JSONField(default=dict, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignee = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snoozed_until = models.DateTimeField(null=True, blank=True)
    # A snoozed exception wakes early once it has this many occurrences.
    snooze_wake_occurrences = models.PositiveIntegerField(null=True, blank=True)
    occurrences = models.PositiveIntegerField(default=0)
    # Occurrences in the last 7 days (how fast it grows: the queue's second sort key), in the 7
    # days before, and in the last 24 hours. Counted when it grows (impact.refresh_impact) and
    # recounted by every detection pass (detection.refresh_growth), since they shrink as days
    # pass: pages read them instead of counting a big exception's occurrences on every view.
    recent_occurrences = models.PositiveIntegerField(default=0, db_default=0)
    week_before_occurrences = models.PositiveIntegerField(default=0, db_default=0)
    day_occurrences = models.PositiveIntegerField(default=0, db_default=0)
    customers_affected = models.PositiveIntegerField(default=0)
    customers_reached_anyway = models.PositiveIntegerField(default=0)
    customers_not_reached = models.PositiveIntegerField(default=0)
    # The three figures above count people: customer ids, and the recipients (address, number,
    # device) of problems without a customer id. How many of those affected and not reached
    # were counted by recipient, so the pages can say which count they show (impact.py).
    customers_affected_by_recipient = models.PositiveIntegerField(default=0, db_default=0)
    customers_not_reached_by_recipient = models.PositiveIntegerField(default=0, db_default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FailureGroupQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["status", "last_seen"], name="group_status_seen"),
            models.Index(fields=["kind", "status"], name="group_kind_status"),
            # The queue's order (impact first) over open exceptions only; the included columns
            # let the counts above the queue come from the index alone (bench/queue_bench.py).
            models.Index(
                fields=["-customers_not_reached", "-recent_occurrences", "-occurrences", "-id"],
                include=["status", "team", "assignee"],
                condition=models.Q(status__in=OPEN_STATUSES, merged_into__isnull=True),
                name="group_open_impact",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class Fingerprint(models.Model):
    """What a detection rule computed for a problem, under one version of the rules.

    Kept apart from exceptions: a new rule version adds fingerprints pointing at the existing
    exceptions, and a merge re-points fingerprints, so history is never split or lost.
    """

    version = models.PositiveSmallIntegerField()
    value = models.CharField(max_length=500)
    group = models.ForeignKey(FailureGroup, on_delete=models.CASCADE, related_name="fingerprints")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Two workers detecting the same problem at once create one exception, not two.
            models.UniqueConstraint(fields=["version", "value"], name="fingerprint_once")
        ]

    def __str__(self) -> str:
        return f"v{self.version}:{self.value}"


class Occurrence(models.Model):
    """One problem counted in an exception: a notification, or a raw event for ingest kinds."""

    group = models.ForeignKey(
        FailureGroup, on_delete=models.CASCADE, related_name="occurrence_rows"
    )
    notification = models.ForeignKey(
        "deliveries.Notification", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    raw_event = models.ForeignKey(
        "ingest.RawEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For problems that are neither (a silent hour): a stable key of what was observed.
    subject = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "notification"],
                condition=models.Q(notification__isnull=False),
                name="occurrence_notification_once",
            ),
            models.UniqueConstraint(
                fields=["group", "raw_event"],
                condition=models.Q(raw_event__isnull=False),
                name="occurrence_raw_once",
            ),
            models.UniqueConstraint(
                fields=["group", "subject"],
                condition=~models.Q(subject=""),
                name="occurrence_subject_once",
            ),
        ]
        indexes = [models.Index(fields=["group", "occurred_at"], name="occurrence_group_time")]

    def __str__(self) -> str:
        return f"{self.group_id} @ {self.occurred_at}"


class HistoryKind(models.TextChoices):
    CREATED = "created", "Created"
    GREW = "grew", "New occurrences"
    ASSIGNED = "assigned", "Assigned"
    STATUS = "status", "Status changed"
    SNOOZED = "snoozed", "Snoozed"
    WOKE = "woke", "Woke up"
    REGRESSED = "regressed", "Regressed"
    MERGED = "merged", "Merged"
    NOTE = "note", "Note"


class GroupHistory(models.Model):
    """A turning point in an exception's life. A null actor means the system (see rule)."""

    group = models.ForeignKey(FailureGroup, on_delete=models.CASCADE, related_name="history")
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=16, choices=HistoryKind.choices)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "group history"

    def __str__(self) -> str:
        return f"{self.group_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"


class OwnerRule(models.Model):
    """Routes new exceptions to a team; the first matching rule (lowest position) wins."""

    position = models.PositiveIntegerField(default=100)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    # Empty fields match anything.
    kind = models.CharField(max_length=32, choices=Kind.choices, blank=True)
    source = models.ForeignKey(
        "ingest.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=16, blank=True)
    purpose = models.CharField(max_length=200, blank=True)
    reason_category = models.CharField(max_length=32, blank=True)
    fix_owner = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"rule {self.position} → {self.team}"


class TimingWindow(models.Model):
    """How long a notification may take to reach a final status before it is late."""

    source = models.ForeignKey(
        "ingest.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    purpose = models.CharField(max_length=200, blank=True, help_text="empty: every purpose")
    seconds = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "purpose"], name="timing_window_once")
        ]

    def __str__(self) -> str:
        return f"{self.source or 'any source'}/{self.purpose or 'any purpose'}: {self.seconds}s"


class AgendaReason(models.TextChoices):
    """Why an exception is on a review's agenda; also the agenda's order, most pressing first."""

    REGRESSED = "regressed", "Regressed"
    SILENT_SOURCE = "silent_source", "Silent source"
    NEW = "new", "New"
    GROWN = "grown", "Grown"
    CARRIED_OVER = "carried_over", "Carried over"
    UNOWNED = "unowned", "Unowned"


class Decision(models.TextChoices):
    ASSIGN = "assign", "Assigned"
    ACCEPT = "accept", "Accepted as expected"
    SNOOZE = "snooze", "Snoozed"
    FIX_REQUESTED = "fix_requested", "Fix requested"
    ESCALATE = "escalate", "Escalated"


class Review(models.Model):
    """One weekly review session: its agenda (items), who ran it, when, and its minutes."""

    week_start = models.DateField(help_text="Monday of the week reviewed, in the local time zone")
    started_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    completed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    minutes_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Two reviewers pressing "Start" at once get the same review, not two agendas.
            models.UniqueConstraint(
                fields=["week_start"],
                condition=models.Q(completed_at__isnull=True),
                name="review_one_unfinished_per_week",
            )
        ]

    def __str__(self) -> str:
        return f"Review of the week of {self.week_start:%b} {self.week_start.day}, {self.week_start.year}"

    @property
    def finished(self) -> bool:
        return self.completed_at is not None


class ReviewItem(models.Model):
    """One exception on a review's agenda and the decision taken on it ('' until decided)."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="items")
    group = models.ForeignKey(FailureGroup, on_delete=models.CASCADE, related_name="review_items")
    position = models.PositiveIntegerField()
    reason_on_agenda = models.CharField(max_length=16, choices=AgendaReason.choices)
    # The reason in words as it stood when the agenda was built ("grew from 40 to 58 ...").
    reason_detail = models.CharField(max_length=300, blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    snooze_until = models.DateField(null=True, blank=True)
    # The owner as the decision left it, for the minutes.
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignee = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["review_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["review", "group"], name="review_item_once"),
            models.UniqueConstraint(fields=["review", "position"], name="review_item_position"),
        ]

    def __str__(self) -> str:
        return f"{self.review} · item {self.position} (#{self.group_id})"


class BulkRun(models.Model):
    """A background bulk change's confirmed set and how far it got.

    Each chunk moves `done` in the transaction that changes its exceptions, so a run killed
    part-way resumes over the same exceptions instead of finding the set "changed" by its own
    first chunks, and its counts and whole-change audit entry come out as if never stopped.
    """

    key = models.CharField(max_length=100, unique=True)  # the task's id: one run per task
    ids = models.JSONField()
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    gone = models.PositiveIntegerField(default=0)
    audit = models.ForeignKey(
        "audit.AuditEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"bulk run {self.key}: {self.done}/{len(self.ids)}"
