from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"
    AUDITOR = "auditor", "Auditor"


class Membership(models.Model):
    """A user's role in notifwatch; a signed-in user without one sees nothing."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # Auditors see masked recipients unless an admin grants this.
    personal_data_granted = models.BooleanField(default=False)
    # An IANA zone name for dates on pages; empty means the server's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    @property
    def sees_personal_data(self) -> bool:
        return self.role in (Role.ADMIN, Role.REVIEWER) or self.personal_data_granted


class Team(models.Model):
    """A group that owns exceptions: engineering, CRM admins, billing, support."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
