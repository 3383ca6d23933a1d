"""Bulk changes on the review queue: one decision applied to many exceptions, and recorded.

The set is always the queue's filter re-run from its query string (optionally narrowed to the
ticked ids), never a list of ids trusted from the browser. A change is previewed first (exact
count, a digest of the ids, a sample), and applied only if the set is still the one the person
confirmed. Every exception changes through the usual action functions (its own history and
audit entry), in chunks, all of them; one more audit entry records the bulk change as a whole.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import F, QuerySet
from django.http import QueryDict

from notifwatch.accounts.models import Team
from notifwatch.audit.actions import actor_label
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.actions import assign, set_status, snooze
from notifwatch.failures.filters import IMPACT_ORDER, QueueFilter
from notifwatch.failures.models import BulkRun, FailureGroup, Status

# Each chunk is one transaction: long enough to amortise the commit, short enough not to hold
# row locks the detection worker is waiting for.
CHUNK_SIZE = 200
SAMPLE_SIZE = 10
VERB_STATUS = {"resolve": Status.RESOLVED, "accept": Status.ACCEPTED}


class InvalidFilter(Exception):
    """The posted filters no longer make sense (a team was deleted): never guess a wider set."""

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Change:
    """What to do to every exception in the set."""

    verb: str  # assign, resolve, accept or snooze
    team: Team | None = None
    assignee: object | None = None
    until: datetime | None = None
    comment: str = ""

    def __post_init__(self):
        if self.verb not in ("assign", *VERB_STATUS, "snooze"):
            raise ValueError(f"unknown bulk change {self.verb!r}")
        if self.verb == "assign" and self.team is None and self.assignee is None:
            raise ValueError("assigning needs a team, a person, or both")
        if self.verb == "snooze" and self.until is None:
            raise ValueError("snoozing needs a date")

    def would_change(self, group: FailureGroup) -> bool:
        """False for an exception already in that state: it is left alone (no empty history)."""
        if self.verb in VERB_STATUS:
            return group.status != VERB_STATUS[self.verb]
        if self.verb == "snooze":
            return group.status != Status.SNOOZED or group.snoozed_until != self.until
        same_team = self.team is None or group.team_id == self.team.pk
        same_person = self.assignee is None or group.assignee_id == self.assignee.pk
        return not (same_team and same_person) or group.status == Status.NEW

    def apply(self, group: FailureGroup, *, actor, comment: str) -> None:
        if self.verb in VERB_STATUS:
            set_status(group, VERB_STATUS[self.verb], actor=actor, comment=comment)
        elif self.verb == "snooze":
            snooze(group, self.until, actor=actor, comment=comment)
        else:
            assign(group, team=self.team, assignee=self.assignee, actor=actor)

    @classmethod
    def from_record(cls, record: dict, comment: str = "") -> "Change":
        """The change again from `as_record` (how a background task receives it)."""
        from django.contrib.auth import get_user_model

        team = record.get("team")
        assignee = record.get("assignee")
        until = record.get("until")
        return cls(
            verb=record["verb"],
            team=Team.objects.get(pk=team["id"]) if team else None,
            assignee=get_user_model().objects.get(pk=assignee["id"]) if assignee else None,
            until=datetime.fromisoformat(until) if until else None,
            comment=comment,
        )

    def as_record(self) -> dict:
        record: dict = {"verb": self.verb}
        if self.team is not None:
            record["team"] = {"id": self.team.pk, "name": self.team.name}
        if self.assignee is not None:
            record["assignee"] = {"id": self.assignee.pk, "username": self.assignee.get_username()}
        if self.until is not None:
            record["until"] = self.until.isoformat()
        return record


@dataclass
class Preview:
    """What a bulk change would touch right now."""

    count: int
    digest: str
    sample: list[FailureGroup] = field(default_factory=list)


@dataclass
class Outcome:
    matched: int
    changed: int
    unchanged: int  # already in that state
    gone: int  # stopped matching the filter while the change ran
    audit: AuditEntry


class SetChanged(Exception):
    """The matching set is not the one that was confirmed: show the new one and ask again."""

    def __init__(self, preview: Preview, expected: int | None):
        super().__init__(f"expected {expected}, found {preview.count}")
        self.preview = preview
        self.expected = expected


def matching(querystring: str, ids: list[int] | None = None) -> QuerySet:
    """The exceptions the queue shows for these filters (and among `ids`, if given)."""
    filterset = QueueFilter(QueryDict(querystring), queryset=FailureGroup.objects.all())
    if not filterset.is_valid():
        raise InvalidFilter(filterset.errors)
    groups = filterset.qs
    return groups.filter(pk__in=ids) if ids is not None else groups


def digest_of(pks: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, pks)).encode()).hexdigest()[:32]


def current_ids(groups: QuerySet) -> list[int]:
    return list(groups.order_by("pk").values_list("pk", flat=True))


def preview(querystring: str, ids: list[int] | None = None, *, pks=None) -> Preview:
    """The exact count, a digest of exactly which exceptions, and the first few by impact."""
    groups = matching(querystring, ids)
    pks = current_ids(groups) if pks is None else pks
    shown = ("id", "title", "kind", "status", "customers_not_reached", "occurrences")
    sample = list(groups.order_by(*IMPACT_ORDER).only(*shown)[:SAMPLE_SIZE])
    return Preview(len(pks), digest_of(pks), sample)


def chunks(pks: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(pks), size):
        yield pks[start : start + size]


def confirmed_ids(
    querystring: str, ids: list[int] | None, *, expected: int | None, digest: str = ""
) -> list[int]:
    """The matching ids, if they are still the set the person confirmed; else SetChanged."""
    pks = current_ids(matching(querystring, ids))
    if expected is None or len(pks) != expected or (digest and digest != digest_of(pks)):
        raise SetChanged(preview(querystring, ids, pks=pks), expected)
    return pks


def apply_bulk(
    querystring: str,
    change: Change,
    *,
    actor,
    expected: int | None,
    digest: str = "",
    ids: list[int] | None = None,
    chunk_size: int | None = None,
) -> Outcome:
    """Apply `change` to every exception matching the filters, if it is still the confirmed set.

    Raises SetChanged when the count (or, given a digest, the exact set) differs from what the
    person confirmed, and InvalidFilter when the filters no longer validate.
    """
    groups = matching(querystring, ids)
    pks = confirmed_ids(querystring, ids, expected=expected, digest=digest)
    comment = bulk_comment(change, len(pks))
    changed = unchanged = gone = 0
    for chunk in chunks(pks, chunk_size or CHUNK_SIZE):
        with transaction.atomic():
            c, u, g = apply_chunk(groups, chunk, change, actor, comment)
        changed, unchanged, gone = changed + c, unchanged + u, gone + g
    audit = record_bulk(
        change,
        actor=actor,
        querystring=querystring,
        ids=ids,
        count=len(pks),
        outcome={"changed": changed, "unchanged": unchanged, "gone": gone},
    )
    return Outcome(len(pks), changed, unchanged, gone, audit)


def apply_bulk_run(
    run_key: str,
    querystring: str,
    change: Change,
    *,
    actor,
    expected: int | None,
    digest: str = "",
    ids: list[int] | None = None,
    chunk_size: int | None = None,
) -> Outcome:
    """`apply_bulk` for the worker: the same run key (its task id) resumes where it stopped.

    The confirmed set is checked once, when the run starts, and kept with the run; a restarted
    run skips the chunks that committed and counts them as they were counted then.
    """
    groups = matching(querystring, ids)
    run = BulkRun.objects.filter(key=run_key).first()
    if run is None:
        pks = confirmed_ids(querystring, ids, expected=expected, digest=digest)
        run, _ = BulkRun.objects.get_or_create(key=run_key, defaults={"ids": pks})
    comment = bulk_comment(change, len(run.ids))
    size = chunk_size or CHUNK_SIZE
    while run.audit_id is None:
        with transaction.atomic():
            # Locked: a second runner of the same task waits, then sees what the first did.
            run = BulkRun.objects.select_for_update().get(pk=run.pk)
            if run.audit_id is not None:
                break
            chunk = run.ids[run.done : run.done + size]
            if not chunk:
                run.audit = record_bulk(
                    change,
                    actor=actor,
                    querystring=querystring,
                    ids=ids,
                    count=len(run.ids),
                    outcome={"changed": run.changed, "unchanged": run.unchanged, "gone": run.gone},
                )
                run.save(update_fields=["audit"])
                break
            c, u, g = apply_chunk(groups, chunk, change, actor, comment)
            BulkRun.objects.filter(pk=run.pk).update(
                done=F("done") + len(chunk),
                changed=F("changed") + c,
                unchanged=F("unchanged") + u,
                gone=F("gone") + g,
            )
        run.refresh_from_db()
    run.refresh_from_db()
    return Outcome(len(run.ids), run.changed, run.unchanged, run.gone, run.audit)


def bulk_comment(change: Change, count: int) -> str:
    return f"Bulk change of {count}" + (f": {change.comment}" if change.comment else "")


def apply_chunk(
    groups: QuerySet, chunk: list[int], change: Change, actor, comment: str
) -> tuple[int, int, int]:
    """Changed, unchanged and gone in one chunk (call it inside the chunk's transaction)."""
    # The filter again, row by row: one that changed meanwhile no longer matches.
    still = list(groups.filter(pk__in=chunk).order_by("pk"))
    changed = unchanged = 0
    for group in still:
        if change.would_change(group):
            change.apply(group, actor=actor, comment=comment)
            changed += 1
        else:
            unchanged += 1
    return changed, unchanged, len(chunk) - len(still)


def record_bulk(
    change: Change, *, actor, querystring: str, ids: list[int] | None, count: int, outcome: dict
) -> AuditEntry:
    """One entry for the change as a whole; each exception's own entries say what it became."""
    scope = "selection" if ids is not None else "filter"
    new = {"filter": querystring, "count": count, "scope": scope, **change.as_record(), **outcome}
    if ids is not None:
        new["ids"] = ids
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor_label(actor),
        action=f"exception.bulk_{change.verb}",
        # Not one exception's trail: the set is described by the filter and the count.
        target_type="exception_set",
        target_id=scope,
        target_label=f"{count} exception{'s' if count != 1 else ''} matching {querystring}"[:255],
        new=new,
        detail=change.comment,
    )
