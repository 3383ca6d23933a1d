"""API tokens: issuing, revoking, recognising one in a request, and recording each read.

Every change goes through an action function here that writes its audit entry in the same
transaction; a token itself is never stored, only its SHA-256.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from notifwatch.accounts.access import membership_of
from notifwatch.accounts.models import Role
from notifwatch.api.models import ApiToken
from notifwatch.audit.actions import record_audit
from notifwatch.ingest.credentials import credential_hash

# A different prefix from sources' `nw_` tokens: pasted in the wrong place, the mix-up shows.
PREFIX = "nwu_"
# last_used_at is a hint for the tokens page, not a log (the audit trail is): a script calling
# every second costs one UPDATE a minute rather than one per call.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, on the page that created it


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def create_token(user, name: str, *, actor) -> IssuedToken:
    secret = new_secret()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, token_hash=credential_hash(secret), hint=secret[-4:]
        )
        record_audit(
            actor=actor,
            action="api.token_created",
            target=token,
            new={"name": name, "user": user.get_username(), "hint": token.hint},
        )
    return IssuedToken(token, secret)


def revoke_token(token: ApiToken, *, actor) -> bool:
    """Stop a token at once; False (and no audit entry) if it was already revoked."""
    now = timezone.now()
    with transaction.atomic():
        # Conditional: two revocations at once write one entry.
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not changed:
            return False
        token.revoked_at = now
        record_audit(
            actor=actor,
            action="api.token_revoked",
            target=token,
            old={"revoked": False},
            new={"revoked": True, "user": token.user.get_username(), "hint": token.hint},
        )
    return True


def visible_tokens(user) -> QuerySet[ApiToken]:
    """The tokens a user manages: their own; an admin's, everyone's."""
    tokens = ApiToken.objects.select_related("user").order_by("revoked_at", "-created_at", "-id")
    membership = membership_of(user)
    if membership is not None and membership.role == Role.ADMIN:
        return tokens
    return tokens.filter(user=user)


def bearer_secret(authorization: str) -> str:
    scheme, _, secret = authorization.strip().partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def token_for(authorization: str) -> ApiToken | None:
    """The live token an `Authorization: Bearer …` header names, with its user's membership;
    None for a missing, unknown or revoked token, or an inactive user."""
    secret = bearer_secret(authorization)
    if not secret.startswith(PREFIX):
        return None
    # A lookup by the hash of the secret: the database compares hashes, never secrets.
    token = (
        ApiToken.objects.select_related("user", "user__membership")
        .filter(token_hash=credential_hash(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    return token


def record_read(token: ApiToken, path: str, count: int, status: int) -> None:
    """One audit entry per call: who (through which token) read what, and how much.

    A read changes nothing, so no transaction: the entry is one INSERT, and the conditional
    UPDATE of last_used_at touches a row at most once a minute.
    """
    now = timezone.now()
    record_audit(
        actor=token.user,
        action="api.read",
        target=token,
        new={"count": count, "status": status},
        detail=path,
    )
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ).update(last_used_at=now)
