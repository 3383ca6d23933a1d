"""Why an exception exists and what to do about it, in words: for its page, the weekly review
and the exports alike."""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.urls import reverse

from notifwatch.accounts.masking import MASK, mask_recipient, shown_text
from notifwatch.deliveries.wording import FIX_OWNER_WORDS, words
from notifwatch.failures.detection import (
    ADDRESS_NOUNS,
    CAUSE_PHRASES,
    CAUSE_REIMPORT,
    CAUSE_TIMEOUT,
    CAUSE_TWO_WORKERS,
    CAUSE_UNKNOWN,
    CHANGED_RECIPIENT,
)
from notifwatch.failures.detection import what as messages_words
from notifwatch.failures.models import FailureGroup, Kind, Occurrence
from notifwatch.failures.reasons import reason_by_key
from notifwatch.failures.wording import when_words
from notifwatch.ingest.models import SourceKind
from notifwatch.lib.moments import duration_words, parse_moment


@dataclass
class Explanation:
    """Why this exception exists and what to do about it, in words."""

    sentence: str
    action: str
    fix_owner: str = ""
    permanent: bool | None = None
    # (label, text, link) rows: the facts a reader needs to act on it.
    facts: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class RawSaid:
    """What the provider (or our ingest) said, verbatim, beside the readable reason."""

    label: str
    code: str
    message: str
    url: str


DUPLICATE_ACTIONS = {
    CAUSE_TIMEOUT: "Before retrying after a timeout, check whether the first attempt went "
    "through, or send with the provider's idempotency key so a retry cannot deliver twice.",
    CAUSE_TWO_WORKERS: "Make sure one worker claims each notification (a unique key, or a claim "
    "in the queue) so two cannot send it at the same time.",
    CAUSE_REIMPORT: "Make re-runs reuse the original notification keys, so a job or import run "
    "a second time is recognised and skipped.",
}
IDENTITY_PROBLEMS = {
    "missing_customer_id": (
        "Notifications arrive without a stable customer id, so nobody can find them by customer.",
        "Have the sender include the customer id in what it reports (or map it in the source's "
        "field mapping).",
    ),
    "shared_recipient": (
        "One address is used by several customer ids.",
        "Check the CRM for duplicate or merged customer records: an address belongs to one "
        "person, so one of these customers has the wrong contact details.",
    ),
    "unmatched_callback": (
        "Delivery reports arrive that match no notification the sender reported.",
        "Make sure the sender reports its sends (with the provider message id) to notifwatch, "
        "and that the provider's webhook points at the right source.",
    ),
}
SILENCE_ACTIONS = {
    "provider_stopped_reporting": "The provider's status webhook has probably stopped or been "
    "changed: check it in the provider's dashboard. Sends keep going out meanwhile.",
    "purpose_stopped": "Check the job or trigger that sends this notification. If nothing was "
    "due to be sent, accept this.",
}
KIND_ACTIONS = {
    Kind.DELIVERY_FAILURE: "Open a sample notification below to see what the provider said.",
    Kind.LATE: "Check whether the sender's queue or the provider is stuck, and whether the "
    "provider still reports outcomes to us. If the window is simply too tight, widen it.",
    Kind.DUPLICATE_SEND: "Make the sender idempotent: one key per notification, reused by every "
    "retry and re-run.",
    Kind.MAPPING_BREAK: "A field was probably renamed or removed upstream. Fix the source's field "
    "mapping (or the sender), then reprocess the quarantined events: nothing is lost meanwhile.",
    Kind.SILENCE: "Check whether the sender is running. If nothing was due to be sent, accept "
    "this or give the source business hours.",
    Kind.REJECTED_WEBHOOKS: "Usually a rotated secret: make the secret stored for this source "
    "match the one the sender or provider signs with, so its events are accepted again.",
}
# Detail keys (as detection.py writes them) that the explanation already puts into words or
# that the page shows elsewhere; any others are listed as they are.
EXPLAINED_KEYS = {
    "reason",  # delivery failures: the catalog sentence and action, shown from reason_key
    "action",
    "window_seconds",
    "cause",
    "how",
    "problem",
    "recipient",
    "customer_ids",
    "field",
    "pattern",
    "example",  # the raw text box shows the newest one
    "source",
    "mapping",
    "first_seen",
    "last_reason",
    "hint",
    "mode",
    "last_seen",
    "observed",
    "expected",
    "hours",
    "sent_meanwhile",
    "without_outcome",
    "people_without_outcome",
    "customer_id",  # one customer id, several addresses: worded with its addresses
    "address_count",
}


def explain(group: FailureGroup, personal: bool) -> Explanation:
    """The readable reason: the catalog's when there is one, else what the kind's facts say."""
    detail = group.detail if isinstance(group.detail, dict) else {}

    # Details quote ingest reasons, which can be as long as what a sender put in a field.
    def show(text: str) -> str:
        return shown_text(text, personal=personal)

    reason = reason_by_key(group.reason_key)
    source = str(group.source or "this source")
    # "Out for delivery text messages", as the title says it (not "Out for delivery sms SMS").
    what = messages_words(group.purpose, group.channel)
    kind_action = KIND_ACTIONS.get(group.kind, "")
    if reason:
        explanation = Explanation(reason.sentence, reason.action, permanent=reason.permanent)
    elif group.kind == Kind.DELIVERY_FAILURE:
        category = words(group.reason_category).lower() or "an unknown reason"
        sentence = detail.get("reason") or f"{what} failed: {category}."
        explanation = Explanation(sentence, detail.get("action") or kind_action)
    elif group.kind == Kind.LATE:
        window = duration_words(detail.get("window_seconds"))
        within = f"within {window}" if window else "within their timing window"
        explanation = Explanation(f"{what} got no final status {within}.", kind_action)
    elif group.kind == Kind.DUPLICATE_SEND:
        cause = str(detail.get("cause") or "")
        phrase = CAUSE_PHRASES.get(cause, "") if cause != CAUSE_UNKNOWN else ""
        sentence = "Customers got the same notification more than once"
        explanation = Explanation(
            f"{sentence}: {phrase}." if phrase else f"{sentence}.",
            DUPLICATE_ACTIONS.get(cause, kind_action),
        )
    elif group.kind == Kind.IDENTITY and detail.get("problem") == CHANGED_RECIPIENT:
        explanation = changed_recipient_explanation(group, detail, show)
    elif group.kind == Kind.IDENTITY:
        problem = detail.get("problem") or ("shared_recipient" if "customer_ids" in detail else "")
        sentence, action = IDENTITY_PROBLEMS.get(problem, IDENTITY_PROBLEMS["missing_customer_id"])
        explanation = Explanation(sentence, action)
    elif group.kind == Kind.MAPPING_BREAK:
        field_name = str(detail.get("field") or "")
        pattern = str(detail.get("pattern") or "").removeprefix("… ")
        if field_name:
            problem = f"{field_name} {pattern or 'is missing or unreadable'}"
        else:
            problem = pattern or str(detail.get("example") or "")
        explanation = Explanation(
            f"Events from {source} could not be read" + (f": {show(problem)}." if problem else "."),
            kind_action,
        )
    elif group.kind == Kind.SILENCE:
        mode = detail.get("mode", "")
        if mode == "provider_stopped_reporting":
            sentence = f"{source} still sends, but has stopped reporting delivery outcomes."
        elif mode == "purpose_stopped":
            label = words(group.purpose).lower() or "this notification"
            sentence = f"{source} stopped sending {label} while it normally would."
        else:
            sentence = f"{source} stopped reporting while it normally would."
        explanation = Explanation(sentence, SILENCE_ACTIONS.get(mode, kind_action))
    elif group.kind == Kind.REJECTED_WEBHOOKS:
        explanation = Explanation(
            f"Calls to {source}'s endpoint were refused: bad signature or credentials.",
            kind_action,
        )
    else:
        explanation = Explanation(group.title, kind_action)
    explanation.fix_owner = FIX_OWNER_WORDS.get(
        group.fix_owner or (reason.fix_owner if reason else ""), ""
    )
    explanation.facts = kind_facts(group, detail, show)
    return explanation


def kind_facts(group: FailureGroup, detail: dict, show) -> list[tuple[str, str, str]]:
    facts: list[tuple[str, str, str]] = []
    if group.reason_category:
        facts.append(("Category", words(group.reason_category), ""))
    if group.kind == Kind.LATE and detail.get("window_seconds"):
        facts.append(("Timing window", duration_words(detail["window_seconds"]), ""))
    if detail.get("how"):
        how = detail["how"] if isinstance(detail["how"], list) else [detail["how"]]
        facts.append(("Sent under", " and ".join(map(str, how)), ""))
    if detail.get("recipient"):
        # Detection stores it masked already; mask again in case an older row did not.
        facts.append(("Shared address", mask_recipient(str(detail["recipient"])), ""))
    if detail.get("customer_ids"):
        facts.append(("Customer ids", ", ".join(map(str, detail["customer_ids"])), ""))
    if detail.get("problem") == CHANGED_RECIPIENT:
        facts += changed_recipient_facts(group, detail, show)
    if group.kind == Kind.MAPPING_BREAK and detail.get("field"):
        facts.append(("Field", str(detail["field"]), ""))
    if detail.get("last_reason"):
        facts.append(("Last reason", show(str(detail["last_reason"])), ""))
    if group.kind == Kind.SILENCE:
        if detail.get("last_seen"):
            facts.append(("Last heard from", when_words(detail["last_seen"]), ""))
        if detail.get("hours") and detail.get("expected") is not None:
            facts.append(
                (
                    f"Last {detail['hours']} hours",
                    f"{detail.get('observed', 0)} events, about {detail['expected']} expected",
                    "",
                )
            )
        if detail.get("sent_meanwhile"):
            facts.append(
                ("Sent meanwhile", f"{detail['sent_meanwhile']} through this provider", "")
            )
        if detail.get("without_outcome"):
            people = detail.get("people_without_outcome") or 0
            facts.append(
                (
                    "Without an outcome",
                    f"{detail['without_outcome']} of them, for {people} "
                    f"{'person' if people == 1 else 'people'}: counted as not reached until "
                    "the provider reports",
                    "",
                )
            )
    for key, value in sorted(detail.items()):
        if key not in EXPLAINED_KEYS and isinstance(value, str | int | float) and value != "":
            facts.append((words(key), show(str(value)), ""))
    if group.source and group.kind in (Kind.MAPPING_BREAK, Kind.REJECTED_WEBHOOKS, Kind.SILENCE):
        anchor = "#mapping" if group.kind == Kind.MAPPING_BREAK else ""
        url = reverse("source_detail", args=[group.source.slug]) + anchor
        label = "Fix the mapping" if anchor else "Source"
        facts.append((label, f"{group.source} source page", url))
    return facts


def changed_recipient_explanation(group: FailureGroup, detail: dict, show) -> Explanation:
    """One customer id reached at several addresses: which one is current, and who still uses
    an old one. Said in the sentence, since the review card shows no facts."""
    noun, nouns = ADDRESS_NOUNS.get(group.channel, ("address", "addresses"))
    customer = show(str(detail.get("customer_id") or "")) or "This customer"
    customer = f"Customer {customer}" if detail.get("customer_id") else customer
    action = (
        f"Confirm the customer's current {noun} in the CRM (the newer one is likely it), then "
        f"fix any source that still sends to the old one."
    )
    addresses = address_uses(detail)
    if len(addresses) < 2:
        return Explanation(f"{customer} was reached at several {nouns}.", action)
    newest, older = addresses[-1], addresses[:-1]
    count = max(int(detail.get("address_count") or 0), len(addresses))
    shown_older = older[-3:]
    left_out = count - 1 - len(shown_older)
    more = f" and {left_out} more" if left_out > 0 else ""
    # Moved on: every older address was last used before the newer one was first used.
    newest_first = parse_moment(newest.get("first_seen"))
    last_uses = [parse_moment(a.get("last_seen")) for a in older]
    if newest_first and all(last and last < newest_first for last in last_uses):
        olds = ", ".join(shown_recipient(a) for a in shown_older) + more
        until = when_words(max(last_uses))
        sentence = (
            f"{customer} was reached at {olds} until {until}, then at {shown_recipient(newest)} "
            f"from {when_words(newest.get('first_seen'))}: the {noun} probably changed, and the "
            f"newer one is likely the current one."
        )
    else:
        olds = ", ".join(
            f"{shown_recipient(a)} (last used {when_words(a.get('last_seen'))}{by_sources(a)})"
            for a in shown_older
        )
        sentence = (
            f"{customer} was reached at {count} {nouns} in the same period: {olds}{more}, and "
            f"{shown_recipient(newest)} (first used {when_words(newest.get('first_seen'))}"
            f"{by_sources(newest)}). The newer one is likely the current one: a source probably "
            f"still sends to the old one."
        )
    return Explanation(sentence, action)


def changed_recipient_facts(group: FailureGroup, detail: dict, show) -> list[tuple[str, str, str]]:
    noun, _ = ADDRESS_NOUNS.get(group.channel, ("address", "addresses"))
    customer_id = str(detail.get("customer_id") or "")
    facts = []
    if customer_id:
        query = urlencode({"q": customer_id, "channel": group.channel})
        url = f"{reverse('notification_search')}?{query}"
        facts.append(("Customer id", show(customer_id), url))
    addresses = address_uses(detail)
    for index, address in enumerate(addresses):
        label = f"Newer {noun} (likely current)" if index == len(addresses) - 1 else f"Older {noun}"
        sent = int(address.get("notifications") or 0)
        first, last = when_words(address.get("first_seen")), when_words(address.get("last_seen"))
        parts = [
            shown_recipient(address),
            f"used {first}" if first == last else f"used {first} → {last}",
            f"{sent} notification{'' if sent == 1 else 's'}",
        ]
        if address.get("sources"):
            parts.append("by " + ", ".join(map(str, address["sources"])))
        facts.append((label, " · ".join(parts), ""))
    return facts


def address_uses(detail: dict) -> list[dict]:
    """The addresses detection listed, oldest first (the last is the newer one)."""
    addresses = detail.get("addresses")
    return [a for a in addresses if isinstance(a, dict)] if isinstance(addresses, list) else []


def shown_recipient(address: dict) -> str:
    """Detection stores addresses masked; mask whatever was not (masking a masked number again
    would take its last digits away)."""
    recipient = str(address.get("recipient") or "")
    return recipient if MASK in recipient else mask_recipient(recipient)


def by_sources(address: dict) -> str:
    sources = address.get("sources")
    return f", by {', '.join(map(str, sources))}" if isinstance(sources, list) and sources else ""


RAW_SAID_WITHIN = 200
# How a reader knows the providers senders name in lower case ("apns said" reads as a typo): the
# source kinds' own labels for the providers notifwatch has adapters for, and the push services.
PROVIDER_WORDS = {
    **{
        kind.value: kind.label
        for kind in SourceKind
        if kind not in (SourceKind.JSON, SourceKind.CSV)
    },
    "amazon_ses": SourceKind.SES.label,
    "apns": "Apple (APNs)",
    "fcm": "Firebase (FCM)",
    "smtp": "The mail server",
}


def raw_said(group: FailureGroup, personal: bool) -> RawSaid | None:
    """The newest provider error of its notifications, or the newest ingest reason."""
    # Among the newest occurrences only: a late exception's notifications carry no provider
    # error, and looking for one across 50k occurrences took 145 ms.
    newest = (
        Occurrence.objects.filter(group=group)
        .order_by("-occurred_at", "-id")
        .values("pk")[:RAW_SAID_WITHIN]
    )
    occurrence = (
        Occurrence.objects.filter(pk__in=newest, notification__isnull=False)
        .exclude(notification__error_code="", notification__error_message="")
        .select_related("notification")
        .order_by("-occurred_at", "-id")
        .first()
    )
    if occurrence:
        n = occurrence.notification
        message = shown_text(n.error_message, personal=personal)
        url = reverse("notification_detail", args=[n.pk])
        provider = PROVIDER_WORDS.get(n.provider.strip().lower(), n.provider) or "The provider"
        # "BadDeviceToken — BadDeviceToken": a message that only repeats the code says nothing.
        if message.strip() == n.error_code.strip():
            message = ""
        return RawSaid(f"{provider} said", n.error_code, message, url)
    occurrence = (
        Occurrence.objects.filter(pk__in=newest, raw_event__isnull=False)
        .exclude(raw_event__reason="")
        .select_related("raw_event")
        .defer("raw_event__body")
        .order_by("-occurred_at", "-id")
        .first()
    )
    if occurrence:
        raw = occurrence.raw_event
        message = shown_text(raw.reason, personal=personal)
        url = reverse("raw_event_detail", args=[raw.pk])
        return RawSaid(f"Raw event #{raw.pk}", "", message, url)
    return None
