"""Every change to sources goes through these functions, each writing its audit entry."""

import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from notifwatch.audit.actions import record_audit
from notifwatch.audit.models import AuditEntry
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


# A reprocess run commits its rows and their audit entry chunk by chunk: a run killed mid-way
# leaves the trail of what it did, and continuing it (same run id) starts after that.
REPROCESS_CHUNK = 200
REPROCESSED = "source.reprocessed"
# The request that stored a raw event may still be processing it this long after; until then
# neither the worker's retry nor a reprocess touches a `received` row.
PROCESSING_GRACE = timedelta(seconds=60)
FIXED_OUTCOMES = (Outcome.PARSED, Outcome.DUPLICATE, Outcome.IGNORED)
WAITING_OUTCOMES = (Outcome.QUARANTINED, Outcome.FAILED, Outcome.RECEIVED)
ERRORS_PER_ENTRY = 5


@dataclass
class ReprocessResult:
    run: str
    attempted: int = 0
    fixed: int = 0  # now parsed, duplicate or ignored
    left: int = 0  # still quarantined, with the reason of this try
    failed: int = 0  # processing raised: the row stays as it was, the error recorded on it
    outcomes: dict[str, int] = field(default_factory=dict)
    done: bool = False
    # Set when this call continued a run that had stopped after this raw event id.
    resumed_after: int | None = None
    at: datetime | None = None
    actor_label: str = ""

    def add(self, entry: dict) -> None:
        self.attempted += entry.get("attempted", 0)
        self.fixed += entry.get("fixed", 0)
        self.left += entry.get("left", 0)
        self.failed += entry.get("failed", 0)
        for outcome, n in (entry.get("outcomes") or {}).items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        self.done = self.done or bool(entry.get("done"))

    def as_dict(self) -> dict:
        return {
            "run": self.run,
            "attempted": self.attempted,
            "fixed": self.fixed,
            "left": self.left,
            "failed": self.failed,
            "outcomes": self.outcomes,
            "done": self.done,
        }

    @property
    def words(self) -> str:
        return f"{self.fixed} fixed, {self.left} still quarantined, {self.failed} failed"


def waiting_raw_events(source: Source, now: datetime | None = None) -> QuerySet[RawEvent]:
    """What a reprocess runs again: quarantined and failed rows, and `received` ones no request
    is still processing."""
    now = now or timezone.now()
    return RawEvent.objects.filter(source=source).filter(
        Q(outcome__in=[Outcome.QUARANTINED, Outcome.FAILED])
        | Q(outcome=Outcome.RECEIVED, received_at__lt=now - PROCESSING_GRACE)
    )


def reprocess_quarantined(
    source: Source,
    *,
    actor=None,
    actor_label: str = "system",
    run: str | None = None,
    chunk_size: int = REPROCESS_CHUNK,
) -> ReprocessResult:
    """Run a source's waiting raw events through its current mapping, every row once.

    A row that raises is counted as failed, keeps its outcome and records the error; the run
    goes on. Give `run` to continue a run that was killed after its last committed chunk.
    """
    run = run or uuid.uuid4().hex[:12]
    before = run_entries(source, run).order_by("-id").values_list("new", flat=True).first()
    while not reprocess_chunk(
        source, run, actor=actor, actor_label=actor_label, chunk_size=chunk_size
    ):
        pass
    result = run_result(source, run)
    if before is not None and not before.get("done"):
        result.resumed_after = before.get("to_id")
    return result


def reprocess_chunk(source: Source, run: str, *, actor, actor_label: str, chunk_size: int) -> bool:
    """Reprocess the next chunk of run `run` with its audit entry; True once the run is done."""
    with transaction.atomic():
        # The source row is the run's lock (on SQLite every transaction takes the write lock):
        # two runners of one run take turns, each starting after the chunk the other committed.
        # NO KEY: webhooks storing raw events of this source (a key-share lock) are not held up.
        list(Source.objects.select_for_update(no_key=True).filter(pk=source.pk).values("pk"))
        last = run_entries(source, run).order_by("-id").values_list("new", flat=True).first()
        if last is not None and last.get("done"):
            return True
        cursor = last["to_id"] if last else 0
        ids = list(
            waiting_raw_events(source)
            .filter(pk__gt=cursor)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        entry = ReprocessResult(run=run)
        errors = []
        for raw_id in ids:  # one at a time: a body can be megabytes
            # Locked and read again: the worker's retry may have settled it meanwhile.
            raw = (
                RawEvent.objects.select_for_update(of=("self",))
                .select_related("source")
                .filter(pk=raw_id, outcome__in=WAITING_OUTCOMES)
                .first()
            )
            if raw is None:
                continue
            entry.attempted += 1
            try:
                with transaction.atomic():  # a savepoint: a crash undoes this row only
                    process_raw_event(raw)
            except Exception as exc:
                record_processing_error(raw_id, exc)
                entry.failed += 1
                errors.append({"raw_event": raw_id, "error": error_line(exc)})
                continue
            entry.outcomes[raw.outcome] = entry.outcomes.get(raw.outcome, 0) + 1
            if raw.outcome in FIXED_OUTCOMES:
                entry.fixed += 1
            else:
                entry.left += 1
        done = len(ids) < chunk_size
        chunk = (last or {}).get("chunk", 0) + 1
        span = f"raw events #{ids[0]}–#{ids[-1]}" if ids else "no raw events"
        record_audit(
            actor=actor,
            action=REPROCESSED,
            target=source,
            new=entry.as_dict()
            | {
                "chunk": chunk,
                "from_id": ids[0] if ids else None,
                "to_id": ids[-1] if ids else cursor,
                "done": done,
                "errors": errors[:ERRORS_PER_ENTRY],
            },
            detail=(
                f"Reprocess run {run}, part {chunk}{' (last)' if done else ''}: {span}: "
                f"{entry.words}."
            ),
            system_label=actor_label,
        )
    return done


def run_entries(source: Source, run: str) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(
        action=REPROCESSED,
        target_type=source._meta.label_lower,
        target_id=str(source.pk),
        new__run=run,
    )


def run_result(source: Source, run: str) -> ReprocessResult:
    """A run's totals, added up from its chunks' audit entries."""
    result = ReprocessResult(run=run)
    for new, at, label in (
        run_entries(source, run).order_by("id").values_list("new", "at", "actor_label")
    ):
        result.add(new)
        result.at, result.actor_label = at, label
    return result


def latest_reprocess(source: Source) -> ReprocessResult | None:
    """The source's latest reprocess run (finished, running, or stopped part-way)."""
    latest = (
        AuditEntry.objects.filter(
            action=REPROCESSED, target_type=source._meta.label_lower, target_id=str(source.pk)
        )
        .order_by("-id")
        .values_list("new", flat=True)
        .first()
    )
    if not isinstance(latest, dict) or not latest.get("run"):
        return None  # an entry from before runs had ids
    return run_result(source, latest["run"])


def unfinished_run(source: Source) -> str | None:
    """The id of the source's latest run if it stopped before its end (killed), else None."""
    latest = latest_reprocess(source)
    return latest.run if latest is not None and not latest.done else None


def record_processing_error(raw_id: int, exc: BaseException) -> None:
    """Keep on the row why processing raised; its outcome stays what it was."""
    RawEvent.objects.filter(pk=raw_id).update(last_error=error_text(exc))


def give_up_on_raw_event(raw_id: int, attempts: int, error: str, detail: str = "") -> bool:
    """Mark a raw event `failed` once its automatic retries are spent; False if it moved on.

    `error` is the one-line cause (shown as its reason), `detail` the traceback, if known.
    """
    with transaction.atomic():
        fields = {"last_error": detail} if detail else {}
        changed = RawEvent.objects.filter(
            pk=raw_id, outcome=Outcome.RECEIVED, attempts=attempts
        ).update(
            outcome=Outcome.FAILED,
            next_attempt_at=None,
            processed_at=timezone.now(),
            reason=(
                f"could not be processed after {attempts} attempts ({error}); kept for "
                "inspection: reprocess it once the cause is fixed"
            )[:500],
            **fields,
        )
        if changed:
            record_audit(
                actor=None,
                action="raw_event.failed",
                target=RawEvent.objects.only("id", "source_id", "outcome").get(pk=raw_id),
                new={"attempts": attempts, "error": error},
                system_label="worker",
            )
    return bool(changed)


def error_line(exc: BaseException) -> str:
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


def error_text(exc: BaseException) -> str:
    """The traceback, its end kept when long: where it happened and why."""
    return "".join(traceback.format_exception(exc))[-4000:]


def snapshot(source: Source) -> dict:
    return {
        "name": source.name,
        "kind": source.kind,
        "credential_hint": source.credential_hint,
        "has_mapping": source.mapping is not None,
        "is_active": source.is_active,
    }
