"""Signed JSON webhooks in the Standard Webhooks scheme (standardwebhooks.com).

The sender signs `"{webhook-id}.{webhook-timestamp}.{body}"` with HMAC-SHA256 under the secret
`whsec_<base64 key>` and sends `webhook-signature: v1,<base64 signature>` (several may be listed,
space-separated, while a key is being rotated).
"""

import base64
import binascii
import hashlib
import hmac
import time

from notifwatch.ingest.providers import Rejected

PREFIX = "whsec_"
# Older timestamps are refused so a captured request cannot be replayed later.
TOLERANCE_SECONDS = 5 * 60


def is_standard_secret(secret: str) -> bool:
    return secret.startswith(PREFIX)


def signing_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from exc


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers, body: bytes, now: float | None = None) -> None:
    """Raise Rejected unless the request carries a valid, fresh signature."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (message_id and timestamp and signatures):
        raise Rejected("missing webhook-id, webhook-timestamp or webhook-signature", status=401)
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise Rejected("webhook-timestamp is not a number", status=401) from exc
    if abs((now or time.time()) - sent_at) > TOLERANCE_SECONDS:
        raise Rejected("webhook-timestamp is too old or in the future", status=401)
    expected = sign(secret, message_id, sent_at, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise Rejected("signature mismatch", status=403)
