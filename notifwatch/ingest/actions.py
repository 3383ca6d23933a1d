"""Every change to sources goes through these functions, each writing its audit entry."""

from dataclasses import dataclass

from django.db import transaction

from notifwatch.audit.actions import record_audit
from notifwatch.ingest.credentials import credential_hash, credential_hint, new_token
from notifwatch.ingest.mapping import validate_mapping
from notifwatch.ingest.models import Outcome, RawEvent, Source, SourceKind
from notifwatch.ingest.processing import process_raw_event
from notifwatch.ingest.standard_webhooks import is_standard_secret, signing_key

# Kinds whose secret is an HMAC key we must keep to verify signatures.
SIGNING_KINDS = {SourceKind.MAILGUN, SourceKind.TWILIO}
# Kinds that authenticate with a bearer token we generate when none is given.
TOKEN_KINDS = {SourceKind.JSON, SourceKind.CSV}


@dataclass
class SavedSource:
    source: Source
    created: bool
    new_token: str | None  # shown once, never stored


def save_source(
    *,
    slug: str,
    kind: str,
    actor=None,
    name: str = "",
    secret: str | None = None,
    mapping: dict | None = None,
    actor_label: str = "system",
) -> SavedSource:
    """Create or update a source; a token is generated for token kinds that have none."""
    if kind not in SourceKind.values:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(SourceKind.values)})")
    if mapping is not None:
        validate_mapping(mapping)
    with transaction.atomic():
        source = Source.objects.select_for_update().filter(slug=slug).first()
        created = source is None
        old = None if created else snapshot(source)
        source = source or Source(slug=slug)
        source.kind = kind
        source.name = name or source.name or slug.replace("-", " ").replace("_", " ").title()
        if mapping is not None:
            source.mapping = mapping
        token = None
        if secret is None and kind in TOKEN_KINDS and not source.credential_hash:
            secret = token = new_token()
        if secret is not None:
            if kind == SourceKind.JSON and is_standard_secret(secret):
                signing_key(secret)  # raises ValueError with a readable message when malformed
            set_secret(source, secret)
        source.save()
        record_audit(
            actor=actor,
            action="source.created" if created else "source.changed",
            target=source,
            old=old,
            new=snapshot(source),
            system_label=actor_label,
        )
    return SavedSource(source=source, created=created, new_token=token)


def keeps_signing_key(kind: str, secret: str) -> bool:
    """HMAC kinds need the key itself; for basic auth and bearer tokens a hash is enough."""
    if kind in SIGNING_KINDS:
        return True
    if kind == SourceKind.JSON:
        # A whsec_ secret signs requests (Standard Webhooks); anything else is a bearer token.
        return is_standard_secret(secret)
    from notifwatch.ingest.providers import adapter_for

    adapter = adapter_for(kind)
    decide = getattr(adapter, "keeps_signing_key", None)
    return bool(decide and decide(secret))


def set_secret(source: Source, secret: str) -> None:
    if keeps_signing_key(source.kind, secret):
        source.signing_key = secret
        source.credential_hash = ""
    else:
        source.credential_hash = credential_hash(secret)
        source.signing_key = ""
    source.credential_hint = credential_hint(secret)


def rotate_token(source: Source, *, actor=None, actor_label: str = "system") -> str:
    """Issue a new bearer token; the old one stops working at once."""
    token = new_token()
    with transaction.atomic():
        old_hint = source.credential_hint
        set_secret(source, token)
        source.save(
            update_fields=["credential_hash", "signing_key", "credential_hint", "updated_at"]
        )
        record_audit(
            actor=actor,
            action="source.token_rotated",
            target=source,
            old={"hint": old_hint},
            new={"hint": source.credential_hint},
            system_label=actor_label,
        )
    return token


def set_mapping(
    source: Source, mapping: dict | None, *, actor=None, actor_label: str = "system"
) -> None:
    if mapping is not None:
        validate_mapping(mapping)
    with transaction.atomic():
        old = source.mapping
        source.mapping = mapping
        source.save(update_fields=["mapping", "updated_at"])
        record_audit(
            actor=actor,
            action="source.mapping_changed",
            target=source,
            old=old,
            new=mapping,
            system_label=actor_label,
        )


@dataclass
class ReprocessResult:
    attempted: int
    outcomes: dict[str, int]


def reprocess_quarantined(
    source: Source, *, actor=None, actor_label: str = "system", limit: int | None = None
) -> ReprocessResult:
    """Run quarantined (and never-processed) raw events of a source through its current mapping."""
    raws = (
        RawEvent.objects.filter(source=source, outcome__in=[Outcome.QUARANTINED, Outcome.RECEIVED])
        .select_related("source")
        .order_by("id")
    )
    outcomes: dict[str, int] = {}
    attempted = 0
    # Ids first, then one at a time: each raw event settles in its own transaction.
    ids = list(
        raws.values_list("id", flat=True)[:limit] if limit else raws.values_list("id", flat=True)
    )
    for raw_id in ids:
        raw = RawEvent.objects.select_related("source").get(pk=raw_id)
        process_raw_event(raw)
        outcomes[raw.outcome] = outcomes.get(raw.outcome, 0) + 1
        attempted += 1
    with transaction.atomic():
        record_audit(
            actor=actor,
            action="source.reprocessed",
            target=source,
            new={"attempted": attempted, "outcomes": outcomes},
            system_label=actor_label,
        )
    return ReprocessResult(attempted=attempted, outcomes=outcomes)


def snapshot(source: Source) -> dict:
    return {
        "name": source.name,
        "kind": source.kind,
        "credential_hint": source.credential_hint,
        "has_mapping": source.mapping is not None,
        "is_active": source.is_active,
    }
