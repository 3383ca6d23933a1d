"""The demo's users, one per role."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from notifwatch.accounts.models import Membership

DEMO_USERS = (
    ("demo", "demo-password", "admin"),
    ("reviewer", "reviewer-password", "reviewer"),
    ("viewer", "viewer-password", "viewer"),
    ("auditor", "auditor-password", "auditor"),
)


def ensure_users() -> dict[str, AbstractUser]:
    """The demo users by name, created with their roles when missing."""
    user_model = get_user_model()
    users = {}
    for username, password, role in DEMO_USERS:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            # The demo admin may also open Django's admin (which needs staff status).
            is_admin = role == "admin"
            user = user_model.objects.create_user(
                username=username,
                password=password,
                # Alerts by email go to the user's own address (printed on the demo's console).
                email=f"{username}@notifwatch.example",
                is_staff=is_admin,
                is_superuser=is_admin,
            )
        if not Membership.objects.filter(user=user).exists():
            Membership.objects.create(user=user, role=role)
        users[username] = user
    return users
