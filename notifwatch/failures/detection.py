"""Detection rules: find problems in notifications and raw events, count them in exceptions.

Each rule is a plain function that reads with a few set-based queries and hands `Problem`s to
`record_problems` (grouping.py), which owns fingerprints, occurrences and the lifecycle.
`run_checks` runs every rule once.

Passes need no watermark: each re-reads the last LOOKBACK (8 days) and skips, with an anti-join
on Occurrence, what an exception of that kind already counts. What is re-read anyway (duplicate
pairs, shared addresses, silent hours) is idempotent through Occurrence's unique constraints.
"""

import hashlib
import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone

from notifwatch.accounts.masking import mask_recipient
from notifwatch.deliveries.models import DeliveryEvent, FinalStatus, IdentityProblem, Notification
from notifwatch.failures.actions import wake
from notifwatch.failures.grouping import RULES_VERSION, Problem, record_problems
from notifwatch.failures.impact import (
    REACHED,
    RECENT_FIELDS,
    WEEK,
    recent_counts,
    refresh_impact,
    refresh_replaced,
)
from notifwatch.failures.models import FailureGroup, Fingerprint, Kind, Occurrence, Status
from notifwatch.failures.reasons import reason_by_key
from notifwatch.failures.windows import Windows, default_window
from notifwatch.ingest.models import Outcome, RawEvent, Source, SourceKind
from notifwatch.lib.moments import duration_words

LOOKBACK = timedelta(days=8)
NOT_SETTLED = (FinalStatus.PENDING, FinalStatus.DEFERRED)

# Duplicate sends.
DUPLICATE_WINDOW = timedelta(minutes=10)
TWO_WORKERS_GAP = timedelta(minutes=2)
# "tck-55280:ticket_reply:email:3" and "…:4": the sender numbered them as a series of distinct
# messages (replies in one ticket), so the same references twice is not a duplicate.
NUMBERED_KEY = re.compile(r"^(.+[:#/])(\d{1,6})$")
TIMEOUT = re.compile(r"timed?[\s_-]?out|etimedout|deadline exceeded", re.IGNORECASE)
CAUSE_TIMEOUT = "retry after a timeout that had succeeded"
CAUSE_TWO_WORKERS = "two workers"
CAUSE_REIMPORT = "re-run import"
CAUSE_UNKNOWN = "unknown"
CAUSE_PHRASES = {
    CAUSE_TIMEOUT: "retried after a timeout although the first attempt had gone through",
    CAUSE_TWO_WORKERS: "two workers sent the same notification",
    CAUSE_REIMPORT: "an import was run again under new keys",
    CAUSE_UNKNOWN: "cause unknown",
}

# Silence.
SILENCE_HOURS = 3  # judged over at least the last 3 complete hours
SILENCE_MAX_HOURS = 24  # a quiet source is judged over its whole silent stretch, up to a day
SILENCE_MIN_EXPECTED = 5  # fewer expected events than this cannot tell silence from chance
SILENCE_SHARE = 0.10  # under 10% of the expected count is silence
HISTORY_WEEKS = 4
HISTORY_DAYS = 7
MIN_PERIODS = 2
# Provider names senders log for the messages of each provider source kind.
PROVIDER_NAMES = {
    SourceKind.SES: {"ses", "amazon_ses", "aws_ses", "amazon ses"},
    SourceKind.UNISENDER_GO: {"unisender_go", "unisender"},
}
PROVIDER_CHANNEL = {SourceKind.TWILIO: "sms"}

CHANNEL_NOUNS = {
    "email": "emails",
    "sms": "text messages",
    "push": "push notifications",
    "in_app": "in-app messages",
    "webhook": "webhook calls",
    "other": "messages",
}
CHANNEL_WORDS = {
    "email": {"email", "mail"},
    "sms": {"sms", "text"},
    "push": {"push"},
    "in_app": {"inapp", "in_app"},
    "webhook": {"webhook"},
}
STATUS_VERBS = {"bounced": "bounced", "failed": "failed", "suppressed": "were suppressed"}
LOWER_FIRST_WORDS = {"The", "A", "An", "This", "Our", "Too", "It", "Its", "No", "We", "There"}


# ---------------------------------------------------------------------------------------------
# The pass
# ---------------------------------------------------------------------------------------------


def run_checks(now: datetime | None = None) -> dict[str, int]:
    """Run every detection once; return the new occurrences per kind and the wake-ups."""
    now = now or timezone.now()
    since = now - LOOKBACK
    mark = Occurrence.objects.aggregate(last=Max("id"))["last"] or 0
    woken = wake_snoozed(now)
    detect_delivery_failures(since)
    detect_late(now, since)
    detect_duplicate_sends(since)
    detect_identity(since)
    detect_mapping_breaks(since, now)
    detect_rejected_webhooks(since, now)
    detect_silence(now)
    refresh_growth(now)
    # A resend delivered after its exception last grew: "reached anyway" moves without growth.
    refresh_replaced(now)
    added = dict(
        Occurrence.objects.filter(id__gt=mark)
        .values("group__kind")
        .annotate(n=Count("id"))
        .values_list("group__kind", "n")
    )
    counts = {kind: added.get(kind, 0) for kind in Kind.values}
    counts["woken"] = woken
    return counts


def refresh_growth(now: datetime) -> int:
    """Recount each exception's recent occurrences as time passes; returns how many changed.

    One grouped pass over the last 14 days of occurrences, and writes only where a figure moved
    (an UPDATE of every exception each minute would rewrite 50k rows for nothing).
    """
    fresh = {
        row[0]: tuple(row[1:])
        for row in Occurrence.objects.filter(occurred_at__gte=now - 2 * WEEK)
        .values("group_id")
        .annotate(**recent_counts(now))
        .values_list("group_id", *RECENT_FIELDS)
        .order_by()
    }
    # An exception with occurrences in the last 14 days was last seen then (refresh_impact).
    nonzero = Q()
    for name in RECENT_FIELDS:
        nonzero |= Q(**{f"{name}__gt": 0})
    stored = FailureGroup.objects.filter(nonzero | Q(last_seen__gte=now - 2 * WEEK)).values_list(
        "pk", *RECENT_FIELDS
    )
    zero = (0,) * len(RECENT_FIELDS)
    changed = [
        FailureGroup(pk=pk, **dict(zip(RECENT_FIELDS, fresh.get(pk, zero), strict=True)))
        for pk, *figures in stored
        if fresh.get(pk, zero) != tuple(figures)
    ]
    FailureGroup.objects.bulk_update(changed, RECENT_FIELDS, batch_size=1000)
    return len(changed)


def wake_snoozed(now: datetime) -> int:
    """Snoozed exceptions whose date has come back to their owner."""
    due = FailureGroup.objects.filter(status=Status.SNOOZED, snoozed_until__lte=now)
    woken = 0
    for group in due:
        wake(
            group,
            rule="snooze expired",
            # No clock time in stored words: the entry's own time, shown in the reader's zone,
            # says when.
            why="the date it was snoozed until has come",
        )
        woken += 1
    return woken


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def uncounted(queryset, kind: str, via: str = "notification"):
    """Rows no exception of this kind counts yet (the anti-join that makes passes cheap)."""
    counted = Occurrence.objects.filter(**{via: OuterRef("pk")}, group__kind=kind)
    return queryset.filter(~Exists(counted))


Retitle = Callable[[FailureGroup, Problem], tuple[str, dict]]


def record(problems: list[Problem], *, rule: str, retitle: Retitle | None = None) -> set[int]:
    """record_problems, then refresh the titles that quote totals ("40 of 40 events")."""
    if not problems:
        return set()
    grown = record_problems(problems, rule=rule)
    if retitle is None or not grown:
        return grown
    latest = {p.fingerprint: p for p in problems}
    fingerprints = Fingerprint.objects.filter(
        version=RULES_VERSION, value__in=list(latest)
    ).select_related("group")
    for fingerprint in fingerprints:
        group = fingerprint.group
        # A merged exception carries the title someone chose for the merge: leave it.
        if group.pk not in grown or group.merged_into_id:
            continue
        title, detail = retitle(group, latest[fingerprint.value])
        FailureGroup.objects.filter(pk=group.pk).update(title=title[:300], detail=detail)
    return grown


def purpose_label(purpose: str, channel: str = "") -> str:
    """'order_shipped_sms' → 'Order shipped' (the channel is said by the noun)."""
    words = [w for w in re.split(r"[_\-.\s]+", purpose) if w]
    if words and words[-1].lower() in CHANNEL_WORDS.get(channel, set()):
        words = words[:-1]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def what(purpose: str, channel: str) -> str:
    """'Order confirmation emails', 'Text messages'."""
    noun = CHANNEL_NOUNS.get(channel, "messages")
    label = purpose_label(purpose, channel)
    return f"{label} {noun}" if label else noun[:1].upper() + noun[1:]


def clause(sentence: str) -> str:
    """A reason's sentence, to follow a colon."""
    text = sentence.strip().rstrip(".")
    first, _, rest = text.partition(" ")
    return f"{first.lower()} {rest}" if first in LOWER_FIRST_WORDS else text


def most_common(values: Iterable, default=""):
    counted = Counter(v for v in values if v)
    return counted.most_common(1)[0][0] if counted else default


def source_names() -> dict[int, Source]:
    return Source.objects.in_bulk()


def normalise_message(message: str) -> str:
    """Take the values out of a message so "'x' is not …" and "'y' is not …" group together."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", message or "")
    # Numbers are values too, except in names of standards ("ISO 8601").
    text = re.sub(r"(?<!ISO )(?<!RFC )\b\d+(?:\.\d+)?\b", "N", text)
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------
# Delivery failures
# ---------------------------------------------------------------------------------------------


def detect_delivery_failures(since: datetime) -> set[int]:
    """Failures that count, one exception per source, channel, purpose and reason category."""
    rows = (
        uncounted(
            Notification.objects.filter(counts_as_failure=True, last_event_at__gte=since),
            Kind.DELIVERY_FAILURE,
        )
        .order_by("last_event_at", "id")
        .values_list(
            "id",
            "source_id",
            "channel",
            "purpose",
            "reason_category",
            "reason_key",
            "fix_owner",
            "final_status",
            "customer_id",
            "settled_at",
            "last_event_at",
        )
    )
    by_fingerprint: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        _, source_id, channel, purpose, category = row[:5]
        value = f"delivery_failure|{source_id}|{channel}|{purpose}|{category or 'unknown'}"
        by_fingerprint[value[:500]].append(row)
    problems = []
    for value, group_rows in by_fingerprint.items():
        _, source_id, channel, purpose, category = group_rows[0][:5]
        reason_key = most_common(r[5] for r in group_rows)
        fix_owner = most_common((r[6] for r in group_rows), "unknown")
        statuses = sorted({r[7] for r in group_rows if r[7] in STATUS_VERBS})
        reason = reason_by_key(reason_key)
        detail = {"reason": reason.sentence, "action": reason.action} if reason else {}
        detail["statuses"] = statuses
        title = failure_title(purpose, channel, statuses, reason_key, category)
        for row in group_rows:
            problems.append(
                Problem(
                    kind=Kind.DELIVERY_FAILURE,
                    fingerprint=value,
                    title=title,
                    occurred_at=row[9] or row[10],
                    notification_id=row[0],
                    customer_id=row[8],
                    source_id=source_id,
                    channel=channel,
                    purpose=purpose,
                    reason_category=category or "unknown",
                    fix_owner=fix_owner,
                    reason_key=reason_key,
                    detail=detail,
                )
            )
    return record(problems, rule="delivery failures", retitle=retitle_failure)


def failure_title(
    purpose: str, channel: str, statuses: Iterable[str], reason_key: str, category: str
) -> str:
    """'Order confirmation emails bounced or were suppressed: the address does not exist'.

    The verb names every final status the exception's rows have, so a title never says
    "suppressed" over a list of bounces (one reason category can hold both: a bounce, and a
    send the provider then suppressed because of it).
    """
    verbs = [STATUS_VERBS[s] for s in STATUS_VERBS if s in set(statuses)] or ["failed"]
    verb = verbs[0] if len(verbs) == 1 else f"{', '.join(verbs[:-1])} or {verbs[-1]}"
    reason = reason_by_key(reason_key)
    if reason:
        because = clause(reason.sentence)
    else:
        because = category.replace("_", " ") if category else "no reason was given"
    return f"{what(purpose, channel)} {verb}: {because}"


def retitle_failure(group: FailureGroup, problem: Problem) -> tuple[str, dict]:
    """Add the statuses of the new rows to those the exception already names."""
    known = group.detail.get("statuses")
    if known is None:  # written before exceptions kept their statuses: read them once
        known = (
            Notification.objects.filter(
                pk__in=Occurrence.objects.filter(group=group).values("notification_id")
            )
            .values_list("final_status", flat=True)
            .distinct()
        )
    statuses = sorted({*known, *problem.detail.get("statuses", [])} & set(STATUS_VERBS))
    title = failure_title(
        group.purpose, group.channel, statuses, group.reason_key, group.reason_category
    )
    return title, {**group.detail, "statuses": statuses}


# ---------------------------------------------------------------------------------------------
# Late
# ---------------------------------------------------------------------------------------------


def detect_late(now: datetime, since: datetime | None = None) -> set[int]:
    """Notifications still pending or deferred past their timing window."""
    since = since or now - LOOKBACK
    windows = Windows()
    shortest = min([default_window("otp"), *windows.configured.values()])
    rows = uncounted(
        Notification.objects.filter(
            final_status__in=NOT_SETTLED,
            first_event_at__gte=since,
            first_event_at__lte=now - shortest,
        ),
        Kind.LATE,
    ).values_list("id", "source_id", "channel", "purpose", "customer_id", "first_event_at")
    problems = []
    for pk, source_id, channel, purpose, customer_id, first_event_at in rows:
        window = windows.window_for(source_id, purpose)
        if first_event_at + window > now:
            continue
        problems.append(
            Problem(
                kind=Kind.LATE,
                fingerprint=f"late|{source_id}|{channel}|{purpose}"[:500],
                title=f"{what(purpose, channel)} without an outcome after {duration_words(window)}",
                occurred_at=first_event_at + window,
                notification_id=pk,
                customer_id=customer_id,
                source_id=source_id,
                channel=channel,
                purpose=purpose,
                detail={"window_seconds": int(window.total_seconds())},
            )
        )
    problems.sort(key=lambda p: p.occurred_at)
    return record(problems, rule="late")


# ---------------------------------------------------------------------------------------------
# Duplicate sends
# ---------------------------------------------------------------------------------------------


@dataclass
class Sent:
    """What telling a duplicate's cause needs of one notification."""

    pk: int
    source_id: int
    key: str
    channel: str
    purpose: str
    customer_id: str
    started: datetime
    at: datetime
    attempts: int = 0
    events: list[tuple] = field(default_factory=list)  # (type, attempt, time, message id, error)
    import_names: set[str] = field(default_factory=set)


SENT_FIELDS = (
    "id",
    "source_id",
    "notification_key",
    "channel",
    "purpose",
    "customer_id",
    "first_event_at",
    "last_event_at",
    "attempts",
)


def detect_duplicate_sends(since: datetime) -> set[int]:
    """The same customer got the same notification more than once.

    (a) one notification delivered under several provider messages (duplicate_sends);
    (b) the same customer, purpose and references delivered under two keys or two channels
    within DUPLICATE_WINDOW. Repeated provider callbacks (duplicate_events) are not sends.
    """
    same_key = [
        Sent(*row)
        for row in uncounted(
            Notification.objects.filter(duplicate_sends__gt=0, last_event_at__gte=since),
            Kind.DUPLICATE_SEND,
        ).values_list(*SENT_FIELDS)
    ]
    pairs = duplicate_pairs(since)
    fill_events(same_key + [sent for pair in pairs for sent in pair])

    found: list[tuple[Sent, str, str]] = []  # (notification, cause, how)
    for sent in same_key:
        found.append((sent, same_key_cause(sent), "same key delivered twice"))
    for first, second in pairs:
        cause = pair_cause(first, second)
        how = "two channels" if first.channel != second.channel else "two keys"
        found.extend([(first, cause, how), (second, cause, how)])

    by_fingerprint: dict[str, list[tuple[Sent, str, str]]] = defaultdict(list)
    for sent, cause, how in found:
        by_fingerprint[f"duplicate_send|{sent.source_id}|{sent.purpose}|{cause}"[:500]].append(
            (sent, cause, how)
        )
    problems = []
    for value, items in by_fingerprint.items():
        channels = {sent.channel for sent, _, _ in items}
        first, cause, _ = items[0]
        channel = first.channel if len(channels) == 1 else "other"
        title = f"{what(first.purpose, channel)} delivered more than once: {CAUSE_PHRASES[cause]}"
        hows = sorted({how for _, _, how in items})
        for sent, _, _ in items:
            problems.append(
                Problem(
                    kind=Kind.DUPLICATE_SEND,
                    fingerprint=value,
                    title=title,
                    occurred_at=sent.at,
                    notification_id=sent.pk,
                    customer_id=sent.customer_id,
                    source_id=first.source_id,
                    channel=channel if len(channels) == 1 else "",
                    purpose=first.purpose,
                    fix_owner="our_setup",
                    detail={"cause": cause, "how": hows},
                )
            )
    problems.sort(key=lambda p: p.occurred_at)
    return record(problems, rule="duplicate sends")


def duplicate_pairs(since: datetime) -> list[tuple[Sent, Sent]]:
    """Delivered notifications of one customer, purpose and refs, within the window."""
    reached = Notification.objects.filter(
        final_status__in=REACHED, last_event_at__gte=since
    ).exclude(Q(customer_id="") | Q(refs={}))
    # One aggregate finds the few (customer, purpose, refs) sent more than once.
    repeated = (
        reached.values("customer_id", "purpose", "refs")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("customer_id", "purpose", "refs")
    )
    wanted = {(c, p, refs_key(r)) for c, p, r in repeated}
    if not wanted:
        return []
    members: dict[tuple, list[Sent]] = defaultdict(list)
    customers = sorted({c for c, _, _ in wanted})
    for start in range(0, len(customers), 500):
        chunk = reached.filter(customer_id__in=customers[start : start + 500])
        for row in chunk.values_list(*SENT_FIELDS, "refs"):
            key = (row[5], row[4], refs_key(row[-1]))
            if key in wanted:
                members[key].append(Sent(*row[:-1]))
    pairs = []
    for sends in members.values():
        sends.sort(key=lambda s: (s.started, s.pk))
        for earlier, later in zip(sends, sends[1:], strict=False):
            close = later.started - earlier.started <= DUPLICATE_WINDOW
            if close and not numbered_series(earlier.key, later.key):
                pairs.append((earlier, later))
    return pairs


def numbered_series(first: str, second: str) -> bool:
    a, b = NUMBERED_KEY.match(first), NUMBERED_KEY.match(second)
    return bool(a and b and a.group(1) == b.group(1) and a.group(2) != b.group(2))


def refs_key(refs) -> str:
    if isinstance(refs, str):
        refs = json.loads(refs)
    return json.dumps(refs or {}, sort_keys=True)


def fill_events(sends: list[Sent]) -> None:
    """The delivery events and import files of these notifications, in one query."""
    by_pk = {sent.pk: sent for sent in sends}
    if not by_pk:
        return
    ids = sorted(by_pk)
    for start in range(0, len(ids), 1000):
        rows = DeliveryEvent.objects.filter(notification_id__in=ids[start : start + 1000])
        for pk, kind, attempt, at, message_id, code, text, import_name in rows.values_list(
            "notification_id",
            "event_type",
            "attempt",
            "occurred_at",
            "provider_message_id",
            "error_code",
            "error_message",
            "raw_event__import_name",
        ):
            sent = by_pk[pk]
            sent.events.append((kind, attempt, at, message_id, f"{code} {text}"))
            if import_name:
                sent.import_names.add(import_name)
    for sent in by_pk.values():
        sent.events.sort(key=lambda e: e[2])


def same_key_cause(sent: Sent) -> str:
    """Why one notification was delivered under two provider messages, when it can be told."""
    timeouts = [
        e for e in sent.events if e[0] in ("failed", "deferred") and TIMEOUT.search(e[4] or "")
    ]
    for timeout in timeouts:
        # The timed-out call had reached the provider after all; the retry sent it again.
        if any(
            e[0] in ("sent", "delivered") and (e[1] or 0) > (timeout[1] or 0) and e[2] > timeout[2]
            for e in sent.events
        ):
            return CAUSE_TIMEOUT
    # Each provider message with the attempt number the sender logged for it.
    attempts: dict[str, tuple[int | None, datetime]] = {}
    for kind, attempt, at, message_id, _ in sent.events:
        if message_id and kind in ("queued", "sent", "delivered"):
            known = attempts.get(message_id)
            if known is None or (known[0] is None and attempt is not None):
                attempts[message_id] = (attempt, at)
    firsts = [at for attempt, at in attempts.values() if attempt == 1]
    if len(firsts) >= 2 and max(firsts) - min(firsts) <= TWO_WORKERS_GAP:
        return CAUSE_TWO_WORKERS
    return CAUSE_UNKNOWN


def pair_cause(first: Sent, second: Sent) -> str:
    """Why the same content went out under two keys, when it can be told."""
    if first.import_names and second.import_names:
        # Two files: the import was run again. One file holding both: the export itself
        # listed the customer twice, which says nothing of why.
        return CAUSE_REIMPORT if not first.import_names & second.import_names else CAUSE_UNKNOWN
    if (
        first.channel == second.channel
        and max(first.attempts, second.attempts) <= 1
        and second.started - first.started <= TWO_WORKERS_GAP
    ):
        return CAUSE_TWO_WORKERS
    return CAUSE_UNKNOWN


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def detect_identity(since: datetime) -> set[int]:
    """No stable customer id; callbacks matching no send record; one address, several ids;
    one customer id, several addresses."""
    sources = source_names()
    problems = []
    missing = uncounted(
        Notification.objects.filter(last_event_at__gte=since).exclude(identity_problem=""),
        Kind.IDENTITY,
    ).values_list("id", "source_id", "channel", "purpose", "identity_problem", "last_event_at")
    for pk, source_id, channel, purpose, problem, at in missing:
        source = sources[source_id]
        if problem == IdentityProblem.UNMATCHED_CALLBACK:
            value = f"identity|unmatched_callback|{source_id}"
            title = f"{source}: delivery reports that match no send record"
            owner, group_channel, group_purpose = "our_setup", "", ""
        else:
            value = f"identity|missing_customer_id|{source_id}|{purpose}"[:500]
            label = purpose_label(purpose, channel) or "Notifications"
            title = f"{label} sent without a customer id by {source}"
            owner, group_channel, group_purpose = "our_setup", "", purpose
        problems.append(
            Problem(
                kind=Kind.IDENTITY,
                fingerprint=value,
                title=title,
                occurred_at=at,
                notification_id=pk,
                source_id=source_id,
                channel=group_channel,
                purpose=group_purpose,
                fix_owner=owner,
                detail={"problem": problem},
            )
        )
    problems.sort(key=lambda p: p.occurred_at)
    grown = record(problems, rule="identity")
    return grown | detect_shared_recipients(since) | detect_changed_recipients(since)


def detect_shared_recipients(since: datetime) -> set[int]:
    """One recipient address (or number, or device) used by several customer ids."""
    known = Notification.objects.filter(last_event_at__gte=since).exclude(
        Q(recipient="") | Q(customer_id="")
    )
    # MIN <> MAX is "more than one distinct value", without COUNT(DISTINCT)'s sort.
    shared = list(
        known.values("recipient")
        .annotate(low=Min("customer_id"), high=Max("customer_id"))
        .filter(low__lt=F("high"))
        .values_list("recipient", flat=True)
    )
    problems = []
    for start in range(0, len(shared), 500):
        rows = known.filter(recipient__in=shared[start : start + 500]).values_list(
            "id", "recipient", "customer_id", "channel", "last_event_at"
        )
        by_recipient: dict[str, list[tuple]] = defaultdict(list)
        for row in rows:
            by_recipient[row[1]].append(row)
        for recipient, items in by_recipient.items():
            customers = sorted({r[2] for r in items})
            digest = hashlib.sha256(recipient.encode()).hexdigest()[:24]
            detail = {"recipient": mask_recipient(recipient), "customer_ids": customers[:50]}
            title = shared_title(recipient, len(customers))
            for pk, _, customer_id, _, at in items:
                problems.append(
                    Problem(
                        kind=Kind.IDENTITY,
                        # Hashed: a fingerprint is not the place for personal data.
                        fingerprint=f"identity|shared_recipient|{digest}",
                        title=title,
                        occurred_at=at,
                        notification_id=pk,
                        customer_id=customer_id,
                        channel=items[0][3],
                        fix_owner="recipient_data",
                        detail=detail,
                    )
                )
    problems.sort(key=lambda p: p.occurred_at)
    return record(problems, rule="identity: shared address", retitle=retitle_shared)


def shared_title(recipient: str, customers: int) -> str:
    return f"One address used by {customers} customer ids: {mask_recipient(recipient)}"


def retitle_shared(group: FailureGroup, problem: Problem) -> tuple[str, dict]:
    customers = sorted(
        Occurrence.objects.filter(group=group)
        .exclude(customer_id="")
        .values_list("customer_id", flat=True)
        .distinct()
    )
    masked = problem.detail["recipient"]
    return (
        f"One address used by {len(customers)} customer ids: {masked}",
        {"recipient": masked, "customer_ids": customers[:50]},
    )


# One customer id with several email addresses (or phone numbers): an address that changed.
CHANGED_RECIPIENT = "changed_recipient"
# A customer normally has one email address and one phone number, so a second one is news; several
# device tokens (push) or endpoints (webhook) per customer are normal, so those are not compared.
ADDRESS_NOUNS = {
    "email": ("email address", "email addresses"),
    "sms": ("phone number", "phone numbers"),
}
ADDRESSES_KEPT = 10  # an exception's detail lists the newest addresses, at most this many
# A number in international form without its "+": recipients are stored normalised (emails
# lower-case, numbers in E.164), but a number the phone library could not place stays as written.
PLAIN_NUMBER = re.compile(r"\+?\d{7,15}")


@dataclass
class AddressUse:
    """One address of one customer on one channel, as used in the period."""

    recipient: str
    first: datetime
    last: datetime
    source_ids: set[int] = field(default_factory=set)
    notifications: list[tuple[int, datetime]] = field(default_factory=list)


def detect_changed_recipients(since: datetime) -> set[int]:
    """One customer id reached at several email addresses (or phone numbers) in the period: an
    address that changed, or a source still sending to an old one. Compared per channel: an
    email address and a phone number of one customer are normal.

    The occurrences are the sends to the older addresses: sends to the newest one are what
    should happen, so a resolved exception regresses only when an old address is used again.
    """
    known = Notification.objects.filter(
        last_event_at__gte=since, channel__in=list(ADDRESS_NOUNS)
    ).exclude(Q(recipient="") | Q(customer_id=""))
    # MIN <> MAX is "more than one distinct value", without COUNT(DISTINCT)'s sort.
    candidates = set(
        known.values("customer_id", "channel")
        .annotate(low=Min("recipient"), high=Max("recipient"))
        .filter(low__lt=F("high"))
        .values_list("customer_id", "channel")
    )
    customers = sorted({customer_id for customer_id, _ in candidates})
    sources = source_names() if customers else {}
    problems = []
    for start in range(0, len(customers), 500):
        rows = (
            known.filter(customer_id__in=customers[start : start + 500])
            .values_list(
                "id",
                "customer_id",
                "channel",
                "recipient",
                "source_id",
                "first_event_at",
                "last_event_at",
            )
            .order_by()
        )
        by_customer: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        for row in rows:
            if (row[1], row[2]) in candidates:
                by_customer[(row[1], row[2])].append(row)
        for (customer_id, channel), items in by_customer.items():
            problems += changed_recipient_problems(customer_id, channel, items, sources)
    problems.sort(key=lambda p: p.occurred_at)
    grown = record(problems, rule="identity: changed address")
    refresh_changed_recipients(problems)
    return grown


def recipient_key(recipient: str) -> str:
    """The same address however it was written: '447700900123' is '+447700900123'."""
    value = recipient.strip().lower()
    return "+" + value.lstrip("+") if PLAIN_NUMBER.fullmatch(value) else value


def changed_recipient_problems(
    customer_id: str, channel: str, items: list[tuple], sources: dict[int, Source]
) -> list[Problem]:
    uses: dict[str, AddressUse] = {}
    for pk, _, _, recipient, source_id, first_at, last_at in items:
        at = first_at or last_at
        use = uses.setdefault(recipient_key(recipient), AddressUse(recipient, at, at))
        if at >= use.last:
            use.recipient = recipient  # the newest spelling names it
        use.first, use.last = min(use.first, at), max(use.last, at)
        use.source_ids.add(source_id)
        use.notifications.append((pk, at))
    if len(uses) < 2:
        return []
    # The address first used last is the newer one: likely the current one.
    ordered = sorted(uses.values(), key=lambda u: (u.first, u.last))
    detail = {
        "problem": CHANGED_RECIPIENT,
        "customer_id": customer_id,
        "address_count": len(ordered),
        "addresses": [
            {
                "recipient": mask_recipient(use.recipient),
                "first_seen": use.first.isoformat(),
                "last_seen": use.last.isoformat(),
                "notifications": len(use.notifications),
                "sources": sorted(str(sources[s]) for s in use.source_ids if s in sources),
            }
            for use in ordered[-ADDRESSES_KEPT:]
        ],
    }
    # Hashed: a sender may use the email address as its customer id.
    digest = hashlib.sha256(f"{channel}|{customer_id}".encode()).hexdigest()[:24]
    title = changed_recipient_title(customer_id, channel, len(ordered))
    return [
        Problem(
            kind=Kind.IDENTITY,
            fingerprint=f"identity|{CHANGED_RECIPIENT}|{digest}",
            title=title,
            occurred_at=at,
            notification_id=pk,
            customer_id=customer_id,
            channel=channel,
            fix_owner="recipient_data",
            detail=detail,
        )
        for use in ordered[:-1]
        for pk, at in use.notifications
    ]


def changed_recipient_title(customer_id: str, channel: str, addresses: int) -> str:
    """'Customer cus_10733 reached at 2 email addresses'."""
    return f"Customer {customer_id} reached at {addresses} {ADDRESS_NOUNS[channel][1]}"


def refresh_changed_recipients(problems: list[Problem]) -> None:
    """Keep each exception's title and addresses current: the newest address's use goes on
    without adding occurrences (its sends are not the problem), so `record`'s retitling of the
    exceptions that grew would leave its last use behind."""
    latest = {p.fingerprint: p for p in problems}
    values = list(latest)
    for start in range(0, len(values), 500):
        fingerprints = Fingerprint.objects.filter(
            version=RULES_VERSION, value__in=values[start : start + 500]
        ).select_related("group")
        for fingerprint in fingerprints:
            group, problem = fingerprint.group, latest[fingerprint.value]
            # A merged exception carries the title someone chose for the merge: leave it.
            if group.merged_into_id or (group.title, group.detail) == (
                problem.title[:300],
                problem.detail,
            ):
                continue
            FailureGroup.objects.filter(pk=group.pk).update(
                title=problem.title[:300], detail=problem.detail
            )


# ---------------------------------------------------------------------------------------------
# Raw-event rules: mapping breaks and rejected webhooks
# ---------------------------------------------------------------------------------------------


class RawRow(NamedTuple):
    """One raw event as a raw-event rule reads it."""

    pk: int
    source: Source
    received_at: datetime
    problems: list[dict] | None
    reason: str


@dataclass(frozen=True)
class RawEventRule:
    """Counts the raw events of one outcome: how it reads each, how its titles stay current."""

    kind: str
    outcome: str
    rule: str
    read: Callable[[RawRow, datetime], list[Problem]]
    retitle: Callable[[FailureGroup, Problem, Source, datetime], tuple[str, dict]]


def detect_raw_events(rule: RawEventRule, since: datetime, now: datetime | None) -> set[int]:
    """Raw events of the rule's outcome received since `since` that it does not count yet."""
    now = now or timezone.now()
    sources = source_names()
    rows = (
        uncounted(
            RawEvent.objects.filter(outcome=rule.outcome, received_at__gte=since),
            rule.kind,
            via="raw_event",
        )
        .order_by("received_at", "id")
        .values_list("id", "source_id", "received_at", "problems", "reason")
    )
    problems = [
        problem
        for pk, source_id, received_at, found, reason in rows
        for problem in rule.read(RawRow(pk, sources[source_id], received_at, found, reason), now)
    ]

    def retitle(group: FailureGroup, problem: Problem) -> tuple[str, dict]:
        return rule.retitle(group, problem, sources[problem.source_id], now)

    return record(problems, rule=rule.rule, retitle=retitle)


def detect_mapping_breaks(since: datetime, now: datetime | None = None) -> set[int]:
    """Quarantined raw events, one exception per source, field and kind of message."""
    return detect_raw_events(MAPPING_BREAKS, since, now)


def break_problems(raw: RawRow, now: datetime) -> list[Problem]:
    problems = []
    seen = set()
    for entry in raw.problems or [{"field": None, "message": raw.reason}]:
        name = entry.get("field") or ""
        message = entry.get("message") or raw.reason
        if not name:
            # "not valid JSON: Expecting value at column 1": the parser's detail varies by
            # line; what broke ("not valid JSON") is before the colon.
            message = message.split(":", 1)[0]
        # A sender's text can be a megabyte; the title and fingerprint keep a readable head.
        pattern = normalise_message(message)[:300]
        if (name, pattern) in seen:
            continue
        seen.add((name, pattern))
        slug = raw.source.slug
        problems.append(
            Problem(
                kind=Kind.MAPPING_BREAK,
                fingerprint=f"mapping_break|{raw.source.pk}|{name}|{pattern}"[:500],
                title=break_title(name, pattern, 1, 1, slug),
                occurred_at=raw.received_at,
                raw_event_id=raw.pk,
                source_id=raw.source.pk,
                fix_owner="our_setup",
                detail={
                    "field": name,
                    "pattern": pattern,
                    "example": (entry.get("message") or raw.reason)[:300],
                    "source": slug,
                    "mapping": mapping_url(raw.source),
                },
            )
        )
    return problems


def retitle_break(
    group: FailureGroup, problem: Problem, source: Source, now: datetime
) -> tuple[str, dict]:
    total = (
        RawEvent.objects.filter(source_id=group.source_id, received_at__gte=group.first_seen)
        .exclude(outcome=Outcome.REJECTED)
        .count()
    )
    detail = {**group.detail, "first_seen": group.first_seen.isoformat()}
    title = break_title(
        detail["field"], detail["pattern"], group.occurrences, total, detail.get("source", "")
    )
    return title, detail


def break_title(name: str, pattern: str, count: int, total: int, slug: str) -> str:
    # "… is not an ISO 8601 timestamp": the value placeholder reads badly right after the name.
    pattern = pattern.removeprefix("… ")
    what_broke = f"`{name}` {pattern}" if name else f"Unreadable events ({pattern})"
    # No clock time in a title (written in the server's zone, read in the reader's): "since"
    # is the exception's first seen, which every page shows in the reader's zone.
    return f"{what_broke} in {count} of the {total} events from {slug} since it began"


def mapping_url(source: Source) -> str:
    """Where an admin fixes the mapping: the editor on the source's page."""
    return reverse("source_detail", args=[source.slug]) + "#mapping"


MAPPING_BREAKS = RawEventRule(
    kind=Kind.MAPPING_BREAK,
    outcome=Outcome.QUARANTINED,
    rule="mapping breaks",
    read=break_problems,
    retitle=retitle_break,
)


def detect_rejected_webhooks(since: datetime, now: datetime | None = None) -> set[int]:
    """Calls refused for bad signatures or credentials, per source and reason."""
    return detect_raw_events(REJECTED_WEBHOOKS, since, now)


def rejected_problems(raw: RawRow, now: datetime) -> list[Problem]:
    reason = raw.reason or "no reason given"
    return [
        Problem(
            kind=Kind.REJECTED_WEBHOOKS,
            fingerprint=f"rejected_webhooks|{raw.source.pk}|{normalise_message(reason)}"[:500],
            title=rejected_title(raw.source, 1, reason),
            occurred_at=raw.received_at,
            raw_event_id=raw.pk,
            source_id=raw.source.pk,
            fix_owner="our_setup",
            detail={
                "source": raw.source.slug,
                "last_reason": reason,
                "hint": "usually a rotated secret: compare the source's secret with the "
                "one the sender signs with",
            },
        )
    ]


def retitle_rejected(
    group: FailureGroup, problem: Problem, source: Source, now: datetime
) -> tuple[str, dict]:
    reason = problem.detail["last_reason"]
    title = rejected_title(source, group.occurrences, reason)
    return title, {**problem.detail, "first_seen": group.first_seen.isoformat()}


def rejected_title(source: Source, count: int, reason: str) -> str:
    calls = "call" if count == 1 else "calls"
    return f"{source}: {count} rejected {calls}, last reason: {reason}"


REJECTED_WEBHOOKS = RawEventRule(
    kind=Kind.REJECTED_WEBHOOKS,
    outcome=Outcome.REJECTED,
    rule="rejected webhooks",
    read=rejected_problems,
    retitle=retitle_rejected,
)


# ---------------------------------------------------------------------------------------------
# Silence
# ---------------------------------------------------------------------------------------------


@dataclass
class History:
    """How far back a source's own past reaches, as periods to compare an hour with."""

    period: timedelta
    periods: int


@dataclass
class Verdict:
    hours: list[datetime]
    observed: int
    expected: float
    silent_hours: list[datetime]


Stream = tuple[int, str | None]  # (source id, purpose or None for the whole source)


def detect_silence(now: datetime) -> set[int]:
    """A source, or a purpose within it, stopped reporting while it normally would.

    The expected count is learned from the source's own past at the same hour of the week
    (2–4 weeks back) or, with less history, of the day (up to 7 days back): the median of those
    periods' totals, so one quiet or busy period does not move it. A source is judged over
    its last SILENCE_HOURS, or over its whole silent stretch (up to a day) when that is too few
    hours to expect anything. settings.NOTIFWATCH_SILENCE_SCHEDULES may give a source its
    business hours: outside them nothing is expected, inside them silence is flagged even
    without history.
    """
    top = hour_of(now)
    sources = {s.pk: s for s in Source.objects.filter(is_active=True)}
    schedules = settings.NOTIFWATCH_SILENCE_SCHEDULES
    firsts = first_activity(sources)
    window = [top - timedelta(hours=h) for h in range(SILENCE_HOURS, 0, -1)]

    histories = {pk: history(firsts.get(pk), top, SILENCE_HOURS) for pk in sources}
    raw_counts = hour_counts(
        RawEvent.objects.all(), "received_at", histories, window, purposes=False
    )
    verdicts: dict[Stream, Verdict] = {}
    stretched: list[int] = []
    for pk, source in sources.items():
        schedule = schedules.get(source.slug)
        verdict = judge(raw_counts.get((pk, None), {}), window, histories[pk], schedule)
        if verdict and verdict.expected >= SILENCE_MIN_EXPECTED:
            verdicts[(pk, None)] = verdict
        elif sum(raw_counts.get((pk, None), {}).get(h, 0) for h in window) == 0:
            stretched.append(pk)

    # Too quiet to judge in a few hours: judge the whole stretch since it last reported.
    lasts = last_activity([pk for pk in stretched if firsts.get(pk)])
    for pk in stretched:
        if pk not in lasts:
            continue
        start = max(
            hour_of(lasts[pk]) + timedelta(hours=1), top - timedelta(hours=SILENCE_MAX_HOURS)
        )
        hours = hours_between(start, top)
        if len(hours) <= SILENCE_HOURS:
            continue
        past = history(firsts.get(pk), top, len(hours))
        counts = hour_counts(
            RawEvent.objects.all(), "received_at", {pk: past}, hours, purposes=False
        )
        verdict = judge(counts.get((pk, None), {}), hours, past, schedules.get(sources[pk].slug))
        if verdict and verdict.expected >= SILENCE_MIN_EXPECTED:
            verdicts[(pk, None)] = verdict

    silent = {
        stream: v for stream, v in verdicts.items() if v.observed < SILENCE_SHARE * v.expected
    }
    # Purposes, judged only within sources that report normally and map cleanly (a mapping
    # break would silence every purpose at once, and has its own exception).
    quarantined = set(
        RawEvent.objects.filter(outcome=Outcome.QUARANTINED, received_at__gte=window[0])
        .values_list("source_id", flat=True)
        .distinct()
    )
    judged = [pk for pk in sources if (pk, None) not in silent and pk not in quarantined]
    # Counted by when they arrived, not when they happened: a sender that ships yesterday's
    # log this morning has not gone quiet about yesterday.
    event_counts = hour_counts(
        DeliveryEvent.objects.filter(notification__source_id=F("source_id")),
        "raw_event__received_at",
        {pk: histories[pk] for pk in judged},
        window,
        purposes=True,
    )
    for (pk, purpose), counts in event_counts.items():
        if not purpose or pk not in judged:
            continue
        verdict = judge(counts, window, histories[pk], schedules.get(sources[pk].slug))
        if verdict and verdict.expected >= SILENCE_MIN_EXPECTED:
            if verdict.observed < SILENCE_SHARE * verdict.expected:
                silent[(pk, purpose)] = verdict

    problems = []
    for (pk, purpose), verdict in silent.items():
        problems.extend(silence_problems(sources[pk], purpose, verdict, top, now))
    problems.sort(key=lambda p: p.occurred_at)
    grown = record(problems, rule="silence", retitle=lambda group, p: (p.title, p.detail))
    # The people left without an outcome are in the detail the retitle just wrote.
    refresh_impact(grown)
    return grown


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    hours = []
    while start < end:
        hours.append(start)
        start += timedelta(hours=1)
    return hours


def first_activity(sources: dict[int, Source]) -> dict[int, datetime]:
    """When each source first reported (one index probe per source, not a scan)."""
    found = {}
    for pk in sources:
        first = (
            RawEvent.objects.filter(source_id=pk)
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        if first:
            found[pk] = first
    return found


def last_activity(source_ids: list[int]) -> dict[int, datetime]:
    found = {}
    for pk in source_ids:
        last = (
            RawEvent.objects.filter(source_id=pk)
            .order_by("-received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        if last:
            found[pk] = last
    return found


def history(first: datetime | None, top: datetime, hours: int) -> History:
    """Whole weeks of history if there are at least two, else whole days."""
    if first is None:
        return History(timedelta(days=1), 0)
    reach = top - timedelta(hours=hours) - first
    weeks = int(reach / timedelta(weeks=1))
    if weeks >= MIN_PERIODS:
        return History(timedelta(weeks=1), min(weeks, HISTORY_WEEKS))
    return History(timedelta(days=1), max(0, min(int(reach / timedelta(days=1)), HISTORY_DAYS)))


def hour_counts(
    queryset, field_name: str, histories: dict[int, History], hours: list[datetime], purposes: bool
) -> dict[Stream, dict[datetime, int]]:
    """Counts per stream and hour over these hours and the same hours of the past periods."""
    if not histories or not hours:
        return {}
    spans = set()
    for past in histories.values():
        for k in range(past.periods + 1):
            spans.add(
                (hours[0] - k * past.period, hours[-1] + timedelta(hours=1) - k * past.period)
            )
    in_spans = Q()
    for start, end in sorted(spans):
        in_spans |= Q(**{f"{field_name}__gte": start, f"{field_name}__lt": end})
    group_by = ["source_id", "hour", *(["notification__purpose"] if purposes else [])]
    rows = (
        queryset.filter(in_spans, source_id__in=list(histories))
        .annotate(hour=TruncHour(field_name, tzinfo=UTC))
        .values(*group_by)
        .annotate(n=Count("id"))
        .values_list(*group_by, "n")
    )
    counts: dict[Stream, dict[datetime, int]] = defaultdict(dict)
    for row in rows:
        source_id, hour, n = row[0], row[1], row[-1]
        stream = (source_id, row[2] if purposes else None)
        hour = (hour if hour.tzinfo else hour.replace(tzinfo=UTC)).astimezone(UTC)
        counts[stream][hour] = counts[stream].get(hour, 0) + n
    return counts


def in_schedule(hour: datetime, schedule: dict | None) -> bool:
    if not schedule:
        return True
    local = timezone.localtime(hour)
    days = schedule.get("days", range(7))
    start, end = schedule.get("hours", (0, 24))
    inside = (
        start <= local.hour < end if start <= end else (local.hour >= start or local.hour < end)
    )
    return local.weekday() in days and inside


def judge(
    counts: dict[datetime, int], hours: list[datetime], past: History, schedule: dict | None
) -> Verdict | None:
    """Observed against expected over these hours; None when there is nothing to go by."""
    hours = [h for h in hours if in_schedule(h, schedule)]
    if not hours:
        return None
    observed = {h: counts.get(h, 0) for h in hours}
    if past.periods >= MIN_PERIODS:
        offsets = [k * past.period for k in range(1, past.periods + 1)]
        totals = [sum(counts.get(h - offset, 0) for h in hours) for offset in offsets]
        expected = float(statistics.median(totals))
        per_hour = {h: statistics.mean(counts.get(h - o, 0) for o in offsets) for h in hours}
    elif schedule:
        # A declared schedule with no past yet: inside business hours, something must come.
        expected = float(SILENCE_MIN_EXPECTED)
        per_hour = {h: expected / len(hours) for h in hours}
    else:
        return None
    silent_hours = [
        h for h in hours if per_hour[h] > 0 and observed[h] < SILENCE_SHARE * per_hour[h]
    ]
    if not silent_hours:
        silent_hours = [max(hours, key=lambda h: per_hour[h] - observed[h])]
    return Verdict(hours, sum(observed.values()), expected, silent_hours)


def provider_names(source: Source) -> set[str]:
    return PROVIDER_NAMES.get(source.kind, {source.kind})


def silence_problems(
    source: Source, purpose: str | None, verdict: Verdict, top: datetime, now: datetime
) -> list[Problem]:
    """One occurrence per silent hour. Titles carry no clock time: a title is written once, in
    the server's zone, and read later by people in theirs; the exception's first seen (the
    first silent hour, shown in the reader's zone) says since when."""
    span = len(verdict.hours)
    hours_text = f"{span} hour{'s' if span != 1 else ''}"
    expected = round(verdict.expected)
    schedule = settings.NOTIFWATCH_SILENCE_SCHEDULES.get(source.slug)
    sent = without_outcome = people = None
    if purpose is not None:
        last = DeliveryEvent.objects.filter(
            source_id=source.pk,
            notification__source_id=source.pk,
            notification__purpose=purpose,
            raw_event__received_at__gte=top - LOOKBACK,
        ).aggregate(last=Max("raw_event__received_at"))["last"]
        label = purpose_label(purpose).lower()
        if verdict.observed == 0 and last:
            title = f"{source}: no {label} sends (usually about {expected} in {hours_text})"
        else:
            title = (
                f"{source}: only {verdict.observed} {label} events in the last {hours_text}, "
                f"about {expected} expected"
            )
        mode, owner = "purpose_stopped", "our_setup"
    else:
        last = last_activity([source.pk]).get(source.pk)
        since = last or verdict.hours[0]
        if source.kind not in (SourceKind.JSON, SourceKind.CSV):
            sent, without_outcome, people = sends_through(source, max(since, top - LOOKBACK), now)
        noun = CHANNEL_NOUNS[PROVIDER_CHANNEL.get(source.kind, "email")]
        if sent:
            mode, owner = "provider_stopped_reporting", "provider"
            if verdict.observed == 0 and last:
                title = (
                    f"{source} stopped reporting: {without_outcome} of {sent} {noun} sent "
                    "through it since its last report have no outcome"
                )
            else:
                title = (
                    f"{source}: only {verdict.observed} delivery reports in the last "
                    f"{hours_text} (about {expected} expected) while {sent} {noun} were sent "
                    "through it"
                )
        else:
            mode, owner = "stopped_sending", "our_setup"
            if verdict.observed == 0 and last:
                either = ", and nothing was sent through it either" if sent == 0 else ""
                title = (
                    f"{source}: nothing received (usually about {expected} events in "
                    f"{hours_text}){either}"
                )
            else:
                title = (
                    f"{source}: only {verdict.observed} events in the last {hours_text}, "
                    f"about {expected} expected"
                )
    silent_hours = verdict.silent_hours
    if verdict.observed == 0 and last:
        # Silent since the last report, not only over the hours judged: the exception's first
        # seen then says when the silence began, as the page's "last heard from" does.
        stretch = hours_between(max(hour_of(last) + timedelta(hours=1), top - LOOKBACK), top)
        silent_hours = [h for h in stretch if in_schedule(h, schedule)] or silent_hours
    detail = {
        "mode": mode,
        "source": source.slug,
        "last_seen": last.isoformat() if last else None,
        "observed": verdict.observed,
        "expected": round(verdict.expected, 1),
        "hours": span,
        "sent_meanwhile": sent,
        "without_outcome": without_outcome,
        # Their impact: silent hours have no people, the sends left without an outcome do.
        "people_without_outcome": people,
    }
    value = f"silence|{source.pk}" + (f"|{purpose}" if purpose is not None else "")
    prefix = f"{source.slug}:{purpose}:" if purpose is not None else f"{source.slug}:"
    return [
        Problem(
            kind=Kind.SILENCE,
            fingerprint=value[:500],
            title=title,
            occurred_at=hour,
            subject=f"{prefix}{hour.isoformat()}"[:200],
            source_id=source.pk,
            purpose=purpose or "",
            fix_owner=owner,
            detail=detail,
        )
        for hour in silent_hours
    ]


def sends_through(source: Source, since: datetime, now: datetime) -> tuple[int, int, int]:
    """Notifications a sender logged as sent through this provider since `since`; how many of
    them have no outcome yet (the provider's messages keep being logged, no report comes); and
    the people those are for (customer ids, or recipients where there is none), counted like
    every other exception's impact."""
    sent_ids = (
        DeliveryEvent.objects.filter(
            occurred_at__gte=since,
            occurred_at__lt=now,
            provider__in=provider_names(source),
            event_type__in=("queued", "sent", "delivered"),
        )
        .exclude(source_id=source.pk)
        .values("notification_id")
    )
    sent = sent_ids.distinct().count()
    if not sent:
        return sent, 0, 0
    waiting = Notification.objects.filter(pk__in=sent_ids, final_status__in=NOT_SETTLED)
    people = waiting.aggregate(
        customers=Count("customer_id", distinct=True, filter=~Q(customer_id="")),
        recipients=Count("recipient", distinct=True, filter=Q(customer_id="") & ~Q(recipient="")),
    )
    return sent, waiting.count(), people["customers"] + people["recipients"]
