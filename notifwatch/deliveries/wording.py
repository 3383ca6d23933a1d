"""Notifications in words: the verdict on one, who can fix it, its references."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.humanize.templatetags.humanize import ordinal

from notifwatch.accounts.masking import shown_text
from notifwatch.deliveries.models import FinalStatus, Notification
from notifwatch.failures.reasons import Reason, reason_by_key

FIX_OWNER_WORDS = {
    "our_setup": "Our team — the sending setup (credentials, template or content)",
    "recipient_data": "Whoever keeps the customer's contact details (CRM, billing or support)",
    "recipient_choice": "No one — it was the customer's own choice; respect it and don't resend",
    "provider": "The provider — it usually heals by itself; escalate if it persists",
    "unknown": "Not known yet",
}
REF_WORDS = {"order_id": "order", "ticket_id": "ticket", "invoice_id": "invoice"}
LOOKUP_REFS = ("order_id", "ticket_id", "invoice_id")


def words(value: str) -> str:
    """A stored name read aloud: "order_confirmation" -> "Order confirmation"."""
    return value.replace("_", " ").replace("-", " ").strip().capitalize()


def reference_rows(refs: dict) -> list[tuple[str, str]]:
    """(label, value) for each reference, in name order: ("Order", "ORD-1")."""
    return [
        (REF_WORDS.get(name, words(name)).capitalize(), value)
        for name, value in sorted(refs.items())
    ]


@dataclass
class Verdict:
    """The answer to "did the customer get it?", in words."""

    tone: str  # good, bad, waiting, choice
    headline: str
    when: datetime | None
    reason: Reason | None = None
    fix_owner: str = ""
    error_code: str = ""
    error_message: str = ""


def verdict(n: Notification, personal: bool) -> Verdict:
    reason = reason_by_key(n.reason_key)
    sentence = reason.sentence if reason else "the provider gave no reason."
    raw = {
        "error_code": n.error_code,
        "error_message": shown_text(n.error_message, personal=personal),
    }
    owner = FIX_OWNER_WORDS.get(n.fix_owner or (reason.fix_owner if reason else ""), "")
    status = n.final_status
    if status == FinalStatus.DELIVERED:
        attempt = ordinal(n.attempts) if n.attempts > 1 else "first"
        return Verdict("good", f"Delivered on the {attempt} attempt", n.settled_at)
    if status == FinalStatus.COMPLAINED:
        return Verdict(
            "choice",
            "Delivered, then the customer marked it as spam",
            n.settled_at,
            reason,
            owner,
            **raw,
        )
    if status in (FinalStatus.BOUNCED, FinalStatus.FAILED, FinalStatus.SUPPRESSED):
        tone = "bad" if n.counts_as_failure else "choice"
        return Verdict(tone, f"Not delivered: {sentence}", n.settled_at, reason, owner, **raw)
    if status == FinalStatus.DEFERRED:
        headline = f"Not delivered yet: {sentence} Still being retried"
        headline += f" (attempt {n.attempts})." if n.attempts else "."
        return Verdict("waiting", headline, n.last_event_at, reason, owner, **raw)
    return Verdict(
        "waiting",
        "No outcome yet: sent, and the provider has not reported delivery",
        n.last_event_at,
    )


def identity_hint(n: Notification) -> str:
    if not n.identity_problem:
        return ""
    for name in (*LOOKUP_REFS, *sorted(n.refs)):
        if n.refs.get(name):
            label = REF_WORDS.get(name, name.replace("_", " "))
            return f"No customer id — look it up by {label} {n.refs[name]}"
    return "No customer id — look it up by the recipient"


def duplicate_note(n: Notification) -> str:
    if not n.duplicate_sends:
        return ""
    times = n.duplicate_sends + 1
    got = "twice" if times == 2 else f"{times} times"
    return f"Sent {times} times — the customer got it {got}"
