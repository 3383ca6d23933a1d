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
