"""Source credentials: generated bearer tokens and basic-auth pairs, kept only as hashes."""

import hashlib
import hmac
import secrets


def new_token() -> str:
    return "nw_" + secrets.token_urlsafe(24)


def credential_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential_hint(secret: str) -> str:
    """Enough to tell two tokens apart on a page, never enough to use one."""
    if len(secret) <= 8:
        return "…" + secret[-2:]
    return f"{secret[:3]}…{secret[-4:]}"


def matches(secret: str, stored_hash: str) -> bool:
    return bool(stored_hash) and hmac.compare_digest(credential_hash(secret), stored_hash)
