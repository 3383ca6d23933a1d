"""Turn a provider's error code or message into a plain-language failure Reason.

The catalog lives in reason_catalog.csv next to this file so it can be read and extended
without touching code. One row per meaning; `code` may list aliases separated by `|` (the first
names the row's key), e.g. Postmark's `HardBounce|1`. Provider `*` rows apply to every provider;
`smtp` and `http` rows are the provider-independent mail-server replies and web statuses;
`fallback` rows are used when only the class of a code is recognised.

Pure Python on purpose: no Django, so adapters, imports and tests can call it anywhere.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

CATEGORIES: tuple[str, ...] = (
    "invalid_address",
    "mailbox_full",
    "blocked_spam",
    "unsubscribed_suppressed",
    "spam_complaint",
    "carrier_filtered",
    "landline_or_unreachable",
    "device_token_invalid",
    "provider_outage_transient",
    "rate_limited",
    "auth_or_config_error",
    "content_rejected",
    "unknown",
)
FIX_OWNERS: tuple[str, ...] = (
    "our_setup",
    "recipient_data",
    "recipient_choice",
    "provider",
    "unknown",
)

CATALOG_PATH = Path(__file__).with_name("reason_catalog.csv")
# Bounced or failed, one rule for every adapter (README "Bounced or failed"). A message the
# receiving side refused for good is `bounced` only when the refusal is about the customer's own
# address, mailbox or handset: correcting the contact details is the fix. Anything we or the
# provider must act on (sender authentication, blocklists and spam blocks, carrier filters,
# content, account or sender configuration, throttling, an outage the provider gave up on) and a
# refusal nobody can explain is `failed`. A provider that refused before trying (a drop, a
# rejection) is `failed` too, or `suppressed` when a suppression list was the reason.
RECIPIENT_SIDE_CATEGORIES = frozenset(
    {"invalid_address", "mailbox_full", "landline_or_unreachable", "device_token_invalid"}
)


_PERMANENT: dict[str, bool | None] = {"yes": True, "no": False, "": None}

# These providers speak web statuses, not mail-server replies: their three-digit codes are HTTP
# statuses, and their messages hold phone numbers and ids whose digits would pass for mail codes.
_HTTP_PROVIDERS = frozenset({"http", "twilio", "fcm", "apns"})

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_BASIC = re.compile(r"[1-5]\d\d")
_HTTP_PREFIXED = re.compile(r"http[\s_:-]*(\d{3})", re.IGNORECASE)
# In free text a code must stand alone: not part of an IP address ("203.0.113.40"), a phone number
# ("+14155550118") or a longer number ("10000 ms").
_ENHANCED_IN_TEXT = re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_BASIC_IN_TEXT = re.compile(r"(?<![\d.+])([45]\d\d)(?!\.?\d)")


@dataclass(frozen=True)
class Reason:
    key: str
    category: str
    permanent: bool | None
    fix_owner: str
    sentence: str
    action: str
    known: bool = True


def load_catalog(
    path: Path = CATALOG_PATH,
) -> tuple[dict[tuple[str, str], Reason], dict[str, Reason]]:
    """Index the catalog by (provider, folded code) and by folded key; fail loudly on a bad row."""
    by_code: dict[tuple[str, str], Reason] = {}
    by_key: dict[str, Reason] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            provider = row["provider"].strip().lower()
            codes = [code.strip() for code in row["code"].split("|")]
            permanent = row["permanent"].strip().lower()
            reason = Reason(
                key=_key(provider, codes[0]),
                category=row["category"].strip(),
                permanent=_PERMANENT.get(permanent),
                fix_owner=row["fix_owner"].strip(),
                sentence=row["sentence"].strip(),
                action=row["action"].strip(),
                known=provider != "fallback",
            )
            # A typo in the catalog should stop the app at start-up, not mislabel failures quietly.
            problems = []
            if reason.category not in CATEGORIES:
                problems.append(f"bad category {reason.category!r}")
            if reason.fix_owner not in FIX_OWNERS:
                problems.append(f"bad fix_owner {reason.fix_owner!r}")
            if permanent not in _PERMANENT:
                problems.append(f"bad permanent {permanent!r}")
            if not (provider and all(codes) and reason.sentence and reason.action):
                problems.append("empty provider, code, sentence or action")
            for code in codes:
                if (provider, code.casefold()) in by_code:
                    problems.append(f"duplicate code {code!r}")
                by_code[(provider, code.casefold())] = reason
                by_key[_key(provider, code).casefold()] = reason
            if problems:
                raise ValueError(f"{path.name} line {line}: {', '.join(problems)}")
    return by_code, by_key


def _key(provider: str, code: str) -> str:
    return code if provider == "*" else f"{provider}:{code}"


_BY_CODE, _BY_KEY = load_catalog()


def refusal_status(reason: Reason | None) -> str:
    """`bounced` or `failed` for a message the receiving side refused for good.

    Without any reason (the provider called it a bounce and gave no code or text) the provider's
    word stands: bounced.
    """
    if reason is None or reason.category in RECIPIENT_SIDE_CATEGORIES:
        return "bounced"
    return "failed"


def reason_by_key(key: str) -> Reason | None:
    """Return the Reason stored under a key or an alias; None if the catalog dropped it."""
    return _BY_KEY.get(key.strip().casefold()) if key else None


def classify_reason(
    provider: str | None, error_code: str | int | None, error_message: str | None = None
) -> Reason | None:
    """Explain a failure from what the provider said; None when it said nothing."""
    provider = (provider or "").strip().lower()
    code = _normalise_code(error_code)
    message = (error_message or "").strip()
    if not code and not message:
        return None
    families = _families(provider)
    reason = _by_code(provider, code, families) if code else None
    # A bare reply code ("550") or a provider's own "unknown" says little, while the text often
    # holds a precise code ("550 5.7.1 ..." is a spam block, not a missing mailbox): let it refine.
    scan_message = provider not in _HTTP_PROVIDERS
    if scan_message and (reason is None or reason.category == "unknown" or _is_basic_smtp(reason)):
        coarse = reason is not None and reason.category != "unknown"
        found = _by_message(message, families, enhanced_only=coarse)
        if found is not None and (reason is None or found.category != "unknown"):
            reason = found
    return reason or _fallback(code, message if scan_message else "", families)


def _normalise_code(error_code: str | int | None) -> str:
    if error_code is None or isinstance(error_code, bool):
        return ""
    code = str(error_code).strip()
    prefixed = _HTTP_PREFIXED.fullmatch(code)
    return prefixed.group(1) if prefixed else code


def _families(provider: str) -> tuple[str, ...]:
    """Which provider-independent rows a three-digit code belongs to, most likely first."""
    if provider in _HTTP_PROVIDERS:
        return ("http",)
    if provider == "smtp":
        return ("smtp",)
    # Email providers and unknown senders: a mail-server reply is likeliest, but their own APIs
    # answer with web statuses too (a 503 from SendGrid's API); the catalog keeps the two apart.
    return ("smtp", "http")


def _by_code(provider: str, code: str, families: tuple[str, ...]) -> Reason | None:
    exact = _BY_CODE.get((provider, code.casefold()))
    if exact is not None:
        return exact
    if _ENHANCED.fullmatch(code):
        return _BY_CODE.get(("smtp", code))
    if _BASIC.fullmatch(code):
        return _first_row(families, code)
    return _BY_CODE.get(("*", code.casefold()))


def _by_message(message: str, families: tuple[str, ...], enhanced_only: bool) -> Reason | None:
    # Enhanced codes first: "550 5.2.2" is a full mailbox, which the 550 alone would call invalid.
    for code in _ENHANCED_IN_TEXT.findall(message):
        if (reason := _BY_CODE.get(("smtp", code))) is not None:
            return reason
    if enhanced_only:
        return None
    for code in _BASIC_IN_TEXT.findall(message):
        if (reason := _first_row(families, code)) is not None:
            return reason
    return None


def _first_row(families: tuple[str, ...], code: str) -> Reason | None:
    return next((r for f in families if (r := _BY_CODE.get((f, code))) is not None), None)


def _is_basic_smtp(reason: Reason) -> bool:
    return reason.key.startswith("smtp:") and _BASIC.fullmatch(reason.key[5:]) is not None


def _fallback(code: str, message: str, families: tuple[str, ...]) -> Reason:
    """Classify by the code's class (4xx / 5xx); known=False so unknown codes can be counted."""
    enhanced = code if _ENHANCED.fullmatch(code) else None
    basic = code if _BASIC.fullmatch(code) else None
    if not (enhanced or basic):
        enhanced = next(iter(_ENHANCED_IN_TEXT.findall(message)), None)
        basic = next(iter(_BASIC_IN_TEXT.findall(message)), None)
    if enhanced:
        key = f"fallback:smtp_{enhanced[0]}xx"
    elif basic:
        key = f"fallback:{families[0]}_{basic[0]}xx"
    else:
        key = "fallback:unknown"
    return _BY_KEY.get(key) or _BY_KEY["fallback:unknown"]
