"""Field mappings: where each canonical field lives in a source's own records.

A mapping is JSON, editable by an admin:

    {
      "accept": {"path": "event", "values": ["notification.attempt"]},
      "fields": {
        "occurred_at": "ts",
        "notification_key": ["idempotency_key", "notif_id"],
        "recipient": ["recipient.email", "recipient.phone"],
        "channel": {"const": "push"},
        "refs": {"order_id": "order_id", "ticket_id": "ticket_id"}
      },
      "values": {"status": {"accepted": "sent", "retry_scheduled": "deferred"}}
    }

A field spec is a dotted path (array items by number: "details.0.errorCode"), a list of paths
(the first present one wins) or {"const": value}. `values` translates status and channel values
(matched case-insensitively); a status translated to "ignore" marks a record that is not a
delivery event. `accept` ignores records whose field holds another value; a record without the
field at all goes on, so a renamed field is quarantined rather than silently ignored.
"""

from typing import Any

from notifwatch.ingest.canonical import CanonicalEvent, FieldProblem, canonical_events
from notifwatch.ingest.parsing import kind_of

CANONICAL_FIELDS = (
    "event_id",
    "occurred_at",
    "notification_key",
    "channel",
    "purpose",
    "status",
    "attempt",
    "customer_id",
    "recipient",
    "refs",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "retryable",
)
MAPPABLE_VALUES = ("status", "channel")
IGNORE = "ignore"
MISSING = object()


class MappingError(ValueError):
    """The mapping document itself is wrong (shown to the admin editing it)."""


class Ignored(Exception):
    """The record is valid but not a delivery event (a log line about rendering, say)."""


def lookup(record: Any, path: str) -> Any:
    # Flat records (CSV rows) may use dotted column names; try the whole key first.
    if isinstance(record, dict) and path in record:
        return record[path]
    current = record
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def resolve(record: Any, spec: Any) -> Any:
    if isinstance(spec, dict) and "const" in spec:
        return spec["const"]
    if isinstance(spec, str):
        spec = [spec]
    for path in spec:
        value = lookup(record, path)
        if value is not MISSING and value is not None and value != "":
            return value
    return None


def validate_mapping(mapping: Any) -> dict:
    """Check a mapping document's shape; raise MappingError with a readable message."""
    if not isinstance(mapping, dict):
        raise MappingError("A mapping must be a JSON object.")
    unknown = set(mapping) - {"name", "description", "accept", "fields", "values"}
    if unknown:
        raise MappingError(f"Unknown top-level keys: {', '.join(sorted(unknown))}.")
    fields = mapping.get("fields", {})
    if not isinstance(fields, dict):
        raise MappingError("'fields' must be an object of canonical field to path.")
    for name, spec in fields.items():
        if name not in CANONICAL_FIELDS:
            raise MappingError(
                f"'{name}' is not a canonical field (expected one of {', '.join(CANONICAL_FIELDS)})."
            )
        if name == "refs":
            if not isinstance(spec, dict) or not all(valid_spec(s) for s in spec.values()):
                raise MappingError("'refs' must map reference names to paths.")
        elif not valid_spec(spec):
            raise MappingError(
                f"Field '{name}': use a path, a list of paths or {{\"const\": value}}."
            )
    values = mapping.get("values", {})
    if not isinstance(values, dict) or set(values) - set(MAPPABLE_VALUES):
        raise MappingError("'values' may only translate 'status' and 'channel'.")
    for name, table in values.items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise MappingError(f"'values.{name}' must map source values to canonical values.")
    accept = mapping.get("accept")
    if accept is not None and (
        not isinstance(accept, dict)
        or not isinstance(accept.get("path"), str)
        or not isinstance(accept.get("values"), list)
    ):
        raise MappingError('\'accept\' must be {"path": ..., "values": [...]}.')
    return mapping


def valid_spec(spec: Any) -> bool:
    if isinstance(spec, str):
        return bool(spec)
    if isinstance(spec, list):
        return bool(spec) and all(isinstance(s, str) and s for s in spec)
    return isinstance(spec, dict) and set(spec) == {"const"}


class Mapping:
    """A compiled mapping; `None` document means the records are canonical already."""

    def __init__(self, document: dict | None):
        self.document = validate_mapping(document) if document else None
        if self.document:
            self.fields = self.document.get("fields", {})
            self.values = {
                name: {str(k).lower(): v for k, v in table.items()}
                for name, table in self.document.get("values", {}).items()
            }
            self.accept = self.document.get("accept")
            if self.accept:
                self.accept_values = {str(v) for v in self.accept["values"]}

    def extract(self, record: Any) -> dict:
        if not isinstance(record, dict):
            raise FieldProblem("record", f"expected a JSON object, got {kind_of(record)}")
        if self.document is None:
            return canonical_columns(record)
        if self.accept:
            kind = lookup(record, self.accept["path"])
            if kind is not MISSING and str(kind) not in self.accept_values:
                raise Ignored(f"{self.accept['path']}={kind!r} is not a delivery event")
        values: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name == "refs":
                values["refs"] = {
                    ref: value
                    for ref, s in spec.items()
                    if (value := resolve(record, s)) is not None
                }
            else:
                values[name] = resolve(record, spec)
        for name, table in self.values.items():
            raw = values.get(name)
            if raw is not None and str(raw).lower() in table:
                values[name] = table[str(raw).lower()]
        if values.get("status") == IGNORE:
            raise Ignored(
                f"status {resolve(record, self.fields.get('status', 'status'))!r} is ignored"
            )
        if "status" in self.fields and values.get("status") is None:
            raise FieldProblem(describe(self.fields["status"]), "missing (maps to status)")
        return values

    def apply(self, record: Any, fallback_event_id: str) -> list[CanonicalEvent]:
        """Turn one record into canonical events (one per recipient); raise Ignored or FieldProblem."""
        values = self.extract(record)
        try:
            return canonical_events(values, fallback_event_id)
        except FieldProblem as problem:
            # Name the source's own field, which is what the admin has to look for.
            spec = self.fields.get(problem.field) if self.document else None
            if spec is not None and not (isinstance(spec, dict) and "const" in spec):
                raise FieldProblem(
                    describe(spec), f"{problem.message} (maps to {problem.field})"
                ) from problem
            raise


def describe(spec: Any) -> str:
    if isinstance(spec, list):
        return " or ".join(spec)
    return str(spec)


def canonical_columns(record: dict) -> dict:
    """Flat canonical records (CSV rows) may spell refs as `refs.order_id` columns."""
    flat_refs = {k[len("refs.") :]: v for k, v in record.items() if k.startswith("refs.")}
    if not flat_refs:
        return record
    refs = record.get("refs") if isinstance(record.get("refs"), dict) else {}
    return {**record, "refs": {**refs, **flat_refs}}
