"""What was last noted about each part of notifwatch's own health."""

from django.db import models


class PartState(models.Model):
    """One part of the health (worker, detection, ...): failing since when, and why.

    `failing_since` is set by a conditional update when the part turns failing and cleared when
    it recovers, so the worker and the web side, looking at the same time, agree on one outage:
    its health alert is keyed by that moment and goes out once.
    """

    part = models.CharField(max_length=32, unique=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    # The latest words for it while failing (the banner shows them); empty when healthy.
    reason = models.TextField(blank=True)
    noted_at = models.DateTimeField()

    class Meta:
        ordering = ["part"]

    def __str__(self) -> str:
        return f"health: {self.part}"
