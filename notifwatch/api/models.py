from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's bearer token for the read API: it acts with that user's role and masking.

    Only the SHA-256 of the token is kept (shown once, when created); the hint (its last four
    characters) tells two tokens apart on the page.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (…{self.hint}) of {self.user}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
