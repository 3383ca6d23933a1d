"""The weekly evidence pack: one week's review minutes, exceptions and audit trail, together.

Plain functions, used by the evidence pages (notifwatch/audit/evidence_views.py):

- ``week_bounds(monday, tz)``: the week as an aware ``[start, end)`` pair, midnight to midnight
  in `tz` (a week with a clock change is 167 or 169 hours long).
- ``evidence_pack(monday, show_personal_data=...)``: everything for that week as an
  ``EvidencePack``, read in a fixed handful of queries whatever the week's size.
- ``bundle_zip(pack)``: the pack as a ZIP of ``minutes.csv``, ``exceptions.csv``, ``audit.csv``,
  ``evidence.json`` (all of it in one document) and ``README.txt`` (what the columns mean).

What is in the pack for the week (Monday 00:00 to the next Monday 00:00, local time):

- the reviews whose ``week_start`` is that Monday (the week they were held), with who started
  and finished them and when, and every agenda item with its decision;
- the exceptions that were on one of those agendas, had an occurrence in the week or had a change
  in their history in the week (created, assigned, status, snoozed, woke, regressed, merged, note);
- the audit entries of the week whose target is one of those exceptions, plus every ``review.*``
  entry of the week, plus every entry about the week's reviews even when it falls outside the
  week (a review finished after midnight on Sunday keeps its "finished" entry in its pack).

Columns (stable; new columns are only ever appended):

minutes.csv (one row per agenda item; a review with an empty agenda gets one row without item)
    review_id, review_started_by, review_started_at, review_finished_by, review_finished_at,
    review_note, position, exception_id, exception_title, reason_on_agenda, reason_detail,
    decision, snooze_until, owner_team, owner_person, decided_by, decided_at, note
exceptions.csv (one row per exception, biggest impact first)
    exception_id, title, kind, source, channel, purpose, on_agenda, status_at_week_end,
    status_now, owner_team, owner_person, occurrences_in_week, customers_in_week,
    occurrences_total, customers_affected, customers_reached_anyway, customers_not_reached,
    first_seen, last_seen, merged_into
audit.csv (oldest first; the same columns as the audit export)
    at, actor, action, target_type, target_id, target_label, old, new, detail

Values: codes, not labels (``reason_on_agenda`` ``regressed``, ``decision`` ``fix_requested``,
statuses ``new``/``assigned``/...); times ISO 8601 in UTC with ``Z``; dates ``YYYY-MM-DD``;
booleans ``true``/``false``. ``occurrences_in_week`` and ``customers_in_week`` count the week
only; ``status_now``, the owner and the totals (``occurrences_total``, ``customers_affected``,
``customers_reached_anyway``, ``customers_not_reached``) are as they stand when the pack is made;
``status_at_week_end`` comes from the exception's history (what its first status change after
the week changed it from; its current status if nothing changed since). The minutes' owner is
the owner the decision left. People are named by full name, else user name.

Personal data: unless ``show_personal_data``, email addresses and phone numbers inside free text
(titles, agenda reasons, notes, audit labels, details and old/new values) are masked with
``mask_text``; the pack holds no recipient column. CSV cells go through ``csv_cell`` (formula
neutralising, OWASP CSV injection); the JSON document is not neutralised.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Exists, JSONField, OuterRef, Q, Subquery
from django.utils import timezone

from notifwatch.accounts.masking import mask_text
from notifwatch.audit.exports import Json, csv_chunks, iso_utc, json_cell, rows_of
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import (
    AgendaReason,
    Decision,
    FailureGroup,
    GroupHistory,
    Kind,
    Occurrence,
    Review,
    ReviewItem,
    Status,
)

EXPORT_KIND = "evidence_pack"


# --- the week ------------------------------------------------------------------------------


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_bounds(week_start: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Midnight of `week_start` and of the Monday after, in `tz` (end exclusive)."""
    # Built from the local dates, not start + 7 days: across a clock change the week is 167 or
    # 169 hours long, and its end must still be the next Monday's midnight.
    start = datetime.combine(week_start, time.min, tzinfo=tz)
    end = datetime.combine(week_start + timedelta(days=7), time.min, tzinfo=tz)
    return start, end


# --- the pack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFacts:
    review_id: int
    started_by: str
    started_at: datetime
    finished_by: str
    finished_at: datetime | None
    note: str
    items: int
    decided: int

    @property
    def carried_over(self) -> int:
        return self.items - self.decided

    def as_json(self) -> dict:
        return {
            "review_id": self.review_id,
            "started_by": self.started_by,
            "started_at": iso_utc(self.started_at),
            "finished_by": self.finished_by,
            "finished_at": iso_utc(self.finished_at) if self.finished_at else None,
            "note": self.note,
            "items": self.items,
            "decided": self.decided,
            "carried_over": self.carried_over,
        }


@dataclass(frozen=True)
class MinutesRow:
    review_id: int
    review_started_by: str
    review_started_at: datetime
    review_finished_by: str
    review_finished_at: datetime | None
    review_note: str
    position: int | None
    exception_id: int | None
    exception_title: str
    reason_on_agenda: str
    reason_detail: str
    decision: str
    snooze_until: date | None
    owner_team: str
    owner_person: str
    decided_by: str
    decided_at: datetime | None
    note: str

    @property
    def reason_label(self) -> str:
        return label(AgendaReason, self.reason_on_agenda)

    @property
    def decision_label(self) -> str:
        return label(Decision, self.decision)


@dataclass(frozen=True)
class ExceptionRow:
    exception_id: int
    title: str
    kind: str
    source: str
    channel: str
    purpose: str
    on_agenda: bool
    status_at_week_end: str
    status_now: str
    owner_team: str
    owner_person: str
    occurrences_in_week: int
    customers_in_week: int
    occurrences_total: int
    customers_affected: int
    customers_reached_anyway: int
    customers_not_reached: int
    first_seen: datetime
    last_seen: datetime
    merged_into: int | None

    @property
    def kind_label(self) -> str:
        return label(Kind, self.kind)

    @property
    def status_at_week_end_label(self) -> str:
        return label(Status, self.status_at_week_end)

    @property
    def status_now_label(self) -> str:
        return label(Status, self.status_now)


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    old: Any
    new: Any
    detail: str

    @property
    def old_text(self) -> str:
        return compact(self.old)

    @property
    def new_text(self) -> str:
        return compact(self.new)


MINUTES_COLUMNS = list(MinutesRow.__dataclass_fields__)
EXCEPTION_COLUMNS = list(ExceptionRow.__dataclass_fields__)
AUDIT_COLUMNS = list(AuditRow.__dataclass_fields__)


@dataclass
class EvidencePack:
    week_start: date
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    generated_at: datetime
    generated_by: str
    personal_data_shown: bool
    reviews: list[ReviewFacts] = field(default_factory=list)
    minutes: list[MinutesRow] = field(default_factory=list)
    exceptions: list[ExceptionRow] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    # Distinct across exceptions (a customer hit by two exceptions counts once).
    customers_in_week: int = 0

    @property
    def week_end(self) -> date:
        """The Sunday: the last day of the week."""
        return self.week_start + timedelta(days=6)

    @property
    def items(self) -> list[MinutesRow]:
        """The agenda items (the minutes without the placeholder rows of empty agendas)."""
        return [row for row in self.minutes if row.exception_id is not None]

    def agendas(self) -> list[tuple[ReviewFacts, list[MinutesRow]]]:
        """Each review with its agenda items, in the order the reviews started."""
        return [
            (review, [row for row in self.items if row.review_id == review.review_id])
            for review in self.reviews
        ]

    @property
    def summary(self) -> dict[str, int]:
        items = self.items
        decided = sum(1 for row in items if row.decision)
        return {
            "reviews": len(self.reviews),
            "agenda_items": len(items),
            "decided": decided,
            "carried_over": len(items) - decided,
            "exceptions": len(self.exceptions),
            "occurrences_in_week": sum(row.occurrences_in_week for row in self.exceptions),
            "customers_in_week": self.customers_in_week,
            "audit_entries": len(self.audit),
        }

    @property
    def rows(self) -> int:
        """Data rows across the three tables (what the export's audit entry counts)."""
        return len(self.minutes) + len(self.exceptions) + len(self.audit)


def evidence_pack(
    week_start: date,
    *,
    show_personal_data: bool,
    tz: tzinfo | None = None,
    generated_by: str = "",
    now: datetime | None = None,
) -> EvidencePack:
    """Everything about the week starting on Monday `week_start` (in `tz`, default current)."""
    if week_start.weekday() != 0:
        raise ValueError(f"{week_start} is not a Monday")
    tz = tz or timezone.get_current_timezone()
    start, end = week_bounds(week_start, tz)
    shown = (lambda text: text) if show_personal_data else mask_text

    reviews = list(
        Review.objects.filter(week_start=week_start)
        .select_related("started_by", "completed_by")
        .annotate(total=Count("items"), decided=Count("items", filter=~Q(items__decision="")))
        .order_by("started_at", "id")
    )
    items = list(
        ReviewItem.objects.filter(review__in=[review.pk for review in reviews])
        .select_related("group", "team", "assignee", "decided_by")
        .order_by("review_id", "position")
    )
    exceptions = week_exceptions(start, end, {item.group_id for item in items}, shown)
    entries = week_audit(start, end, [review.pk for review in reviews], exceptions, shown)

    return EvidencePack(
        week_start=week_start,
        starts_at=start,
        ends_at=end,
        time_zone=str(tz),
        generated_at=now or timezone.now(),
        generated_by=generated_by,
        personal_data_shown=show_personal_data,
        reviews=[review_facts(review, shown) for review in reviews],
        minutes=minutes_rows(reviews, items, shown),
        exceptions=exceptions,
        audit=entries,
        customers_in_week=customers_in(start, end, [row.exception_id for row in exceptions]),
    )


def review_facts(review: Review, shown) -> ReviewFacts:
    return ReviewFacts(
        review_id=review.pk,
        started_by=person(review.started_by),
        started_at=review.started_at,
        finished_by=person(review.completed_by),
        finished_at=review.completed_at,
        note=shown(review.minutes_note),
        items=review.total,
        decided=review.decided,
    )


# The item columns of the minutes row of a review with an empty agenda.
NO_ITEM: dict[str, Any] = {
    "position": None,
    "exception_id": None,
    "exception_title": "",
    "reason_on_agenda": "",
    "reason_detail": "",
    "decision": "",
    "snooze_until": None,
    "owner_team": "",
    "owner_person": "",
    "decided_by": "",
    "decided_at": None,
    "note": "",
}


def minutes_rows(reviews: list[Review], items: list[ReviewItem], shown) -> list[MinutesRow]:
    by_review: dict[int, list[ReviewItem]] = {review.pk: [] for review in reviews}
    for item in items:
        by_review[item.review_id].append(item)
    rows = []
    for review in reviews:
        facts = {
            "review_id": review.pk,
            "review_started_by": person(review.started_by),
            "review_started_at": review.started_at,
            "review_finished_by": person(review.completed_by),
            "review_finished_at": review.completed_at,
            "review_note": shown(review.minutes_note),
        }
        if not by_review[review.pk]:
            # An empty agenda is evidence too: the review still happened.
            rows.append(MinutesRow(**facts, **NO_ITEM))
        for item in by_review[review.pk]:
            rows.append(
                MinutesRow(
                    **facts,
                    position=item.position,
                    exception_id=item.group_id,
                    exception_title=shown(item.group.title),
                    reason_on_agenda=item.reason_on_agenda,
                    reason_detail=shown(item.reason_detail),
                    decision=item.decision,
                    snooze_until=item.snooze_until,
                    owner_team=item.team.name if item.team_id else "",
                    owner_person=person(item.assignee),
                    decided_by=person(item.decided_by),
                    decided_at=item.decided_at,
                    note=shown(item.note),
                )
            )
    return rows


def week_exceptions(
    start: datetime, end: datetime, on_agenda: set[int], shown
) -> list[ExceptionRow]:
    """The exceptions on the agenda or active in the week, with their impact, biggest first."""
    occurred = Occurrence.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    changed = GroupHistory.objects.filter(at__gte=start, at__lt=end)
    # The status an exception had at the end of the week is what its first status change after
    # the week changed it from; no change since means it still has it. One subquery, no loop.
    first_change_after = (
        GroupHistory.objects.filter(group=OuterRef("pk"), at__gte=end, old__has_key="status")
        .order_by("at", "id")
        .values("old")[:1]
    )
    groups = list(
        FailureGroup.objects.filter(
            Q(pk__in=on_agenda)
            | Exists(occurred.filter(group=OuterRef("pk")))
            | Exists(changed.filter(group=OuterRef("pk")))
        )
        .select_related("source", "team", "assignee")
        .annotate(old_at_end=Subquery(first_change_after, output_field=JSONField()))
    )
    in_week = {
        row["group_id"]: row
        for row in occurred.filter(group_id__in=[group.pk for group in groups])
        .values("group_id")
        .annotate(
            n=Count("id"), customers=Count("customer_id", distinct=True, filter=~Q(customer_id=""))
        )
    }
    rows = []
    for group in groups:
        counts = in_week.get(group.pk, {})
        old = group.old_at_end if isinstance(group.old_at_end, dict) else {}
        rows.append(
            ExceptionRow(
                exception_id=group.pk,
                title=shown(group.title),
                kind=group.kind,
                source=group.source.slug if group.source_id else "",
                channel=group.channel,
                purpose=group.purpose,
                on_agenda=group.pk in on_agenda,
                status_at_week_end=old.get("status") or group.status,
                status_now=group.status,
                owner_team=group.team.name if group.team_id else "",
                owner_person=person(group.assignee),
                occurrences_in_week=counts.get("n", 0),
                customers_in_week=counts.get("customers", 0),
                occurrences_total=group.occurrences,
                customers_affected=group.customers_affected,
                customers_reached_anyway=group.customers_reached_anyway,
                customers_not_reached=group.customers_not_reached,
                first_seen=group.first_seen,
                last_seen=group.last_seen,
                merged_into=group.merged_into_id,
            )
        )
    # The queue's order: customers not reached, then occurrences (here: this week's first).
    rows.sort(
        key=lambda row: (
            -row.customers_not_reached,
            -row.occurrences_in_week,
            -row.occurrences_total,
            row.exception_id,
        )
    )
    return rows


def customers_in(start: datetime, end: datetime, group_ids: list[int]) -> int:
    """How many different customers the week's occurrences of these exceptions touched."""
    return (
        Occurrence.objects.filter(
            group_id__in=group_ids, occurred_at__gte=start, occurred_at__lt=end
        )
        .exclude(customer_id="")
        .values("customer_id")
        .distinct()
        .count()
    )


def week_audit(
    start: datetime, end: datetime, review_ids: list[int], exceptions: list[ExceptionRow], shown
) -> list[AuditRow]:
    in_week = Q(at__gte=start, at__lt=end)
    about_exceptions = Q(
        target_type=FailureGroup._meta.label_lower,
        target_id__in=[str(row.exception_id) for row in exceptions],
    )
    about_reviews = Q(
        target_type=Review._meta.label_lower, target_id__in=[str(pk) for pk in review_ids]
    )
    entries = AuditEntry.objects.filter(
        about_reviews | (in_week & (about_exceptions | Q(action__startswith="review.")))
    )
    # The audit export's own columns and cell types, so both read the same.
    _, rows = rows_of("audit", entries)
    audit = []
    for values in rows:
        at, actor, action, target_type, target_id, target_label, old, new, detail = values
        audit.append(
            AuditRow(
                at=at,
                actor=actor,
                action=action,
                target_type=target_type,
                target_id=target_id,
                target_label=shown(target_label),
                old=masked_json(old.value, shown),
                new=masked_json(new.value, shown),
                detail=shown(detail),
            )
        )
    return audit


def masked_json(value: Any, shown) -> Any:
    """A JSON value with `shown` applied to every string in it (a created entry quotes a title)."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return [masked_json(item, shown) for item in value]
    if isinstance(value, dict):
        return {key: masked_json(item, shown) for key, item in value.items()}
    return value


def person(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def label(choices, value: str) -> str:
    return choices(value).label if value in choices.values else value


def compact(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


# --- the bundle ----------------------------------------------------------------------------


def cells(row) -> list:
    """A row's values in column order; JSON values as `Json` cells (compact JSON in CSV)."""
    values = [getattr(row, name) for name in row.__dataclass_fields__]
    if isinstance(row, AuditRow):
        values[6], values[7] = Json(row.old), Json(row.new)
    return values


def json_value(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return json_cell(value)


def records(rows: list) -> list[dict]:
    return [
        {
            name: json_value(value)
            for name, value in zip(row.__dataclass_fields__, cells(row), strict=True)
        }
        for row in rows
    ]


def evidence_json(pack: EvidencePack) -> dict:
    return {
        "kind": EXPORT_KIND,
        "week": {
            "start": pack.week_start.isoformat(),
            "end": pack.week_end.isoformat(),
            "time_zone": pack.time_zone,
            "from": iso_utc(pack.starts_at),
            "until": iso_utc(pack.ends_at),
        },
        "generated_at": iso_utc(pack.generated_at),
        "generated_by": pack.generated_by,
        "personal_data": "shown" if pack.personal_data_shown else "masked",
        "summary": pack.summary,
        "reviews": [review.as_json() for review in pack.reviews],
        "minutes": records(pack.minutes),
        "exceptions": records(pack.exceptions),
        "audit": records(pack.audit),
    }


def csv_text(columns: list[str], rows: list) -> str:
    return "".join(csv_chunks(columns, [cells(row) for row in rows]))


def readme_text(pack: EvidencePack) -> str:
    def columns(names: list[str]) -> str:
        return "\n".join(f"  {name}" for name in names)

    masked = (
        "shown as recorded"
        if pack.personal_data_shown
        else "masked (email addresses and phone numbers inside text are partly hidden)"
    )
    return f"""notifwatch weekly evidence pack
Week of Monday {pack.week_start.isoformat()} to Sunday {pack.week_end.isoformat()}, {pack.time_zone}
({iso_utc(pack.starts_at)} to {iso_utc(pack.ends_at)}, end exclusive).
Generated at {iso_utc(pack.generated_at)} by {pack.generated_by or "system"}.
Personal data: {masked}.

Files
  minutes.csv     the week's reviews: one row per agenda item with its decision and owner
  exceptions.csv  the exceptions on an agenda or active in the week, with their impact
  audit.csv       the audit entries of the week about those exceptions and reviews
  evidence.json   all of the above in one JSON document, plus a summary
  README.txt      this file

Times are ISO 8601 in UTC (Z); dates are YYYY-MM-DD; booleans true/false. Codes, not labels:
reason_on_agenda is one of {", ".join(AgendaReason.values)};
decision is one of {", ".join(Decision.values)} (empty: not decided, carried over);
statuses are {", ".join(Status.values)}.
In CSV files a text cell starting with = + - @ is prefixed with ' so spreadsheets show it as text.

minutes.csv columns (a review with an empty agenda has one row with empty item columns):
{columns(MINUTES_COLUMNS)}
  The owner (owner_team, owner_person) is the owner the decision left.

exceptions.csv columns:
{columns(EXCEPTION_COLUMNS)}
  *_in_week count the week's occurrences and distinct customers. status_now, the owner and
  the totals (occurrences_total, customers_affected, customers_reached_anyway,
  customers_not_reached) are as they stood when the pack was generated; status_at_week_end comes
  from the exception's history.

audit.csv columns (oldest first; old and new are JSON):
{columns(AUDIT_COLUMNS)}
  Entries of the week about the listed exceptions, every review.* entry of the week, and every
  entry about the week's reviews (even when recorded after the week ended).
"""


def bundle_zip(pack: EvidencePack) -> bytes:
    """The pack as a ZIP archive (a week is small: built in memory)."""
    # The archive's file times are the generation time, so the same pack gives the same bytes.
    stamp = pack.generated_at.astimezone(UTC).timetuple()[:6]
    files = {
        "README.txt": readme_text(pack),
        "minutes.csv": csv_text(MINUTES_COLUMNS, pack.minutes),
        "exceptions.csv": csv_text(EXCEPTION_COLUMNS, pack.exceptions),
        "audit.csv": csv_text(AUDIT_COLUMNS, pack.audit),
        "evidence.json": json.dumps(evidence_json(pack), ensure_ascii=False, indent=2) + "\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


def bundle_name(pack: EvidencePack) -> str:
    return f"notifwatch-evidence-{pack.week_start.isoformat()}.zip"
