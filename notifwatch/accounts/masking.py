"""Masking personal data for roles (and exports) that may not see it."""

import re
from email.utils import parseaddr

import phonenumbers

MASK = "•••"
# Free text on a page: this many characters at most (about; a note says what was left out).
# Stored provider messages are cut at 1,000 already; quarantine reasons may be longer.
SHOWN_CHARS = 2_000

_PHONE = re.compile(r"(?P<scheme>[a-z]+:)?(?P<number>\+\d[\d ().-]{5,}\d)", re.IGNORECASE)
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+\d[\d ().-]{5,}\d(?!\d)")

# An address in free text: a run of the characters a local part may hold, "@", and a domain of
# two or more labels. One pattern `[local]+@domain` tried at every position re-reads a long run
# of such characters from each of its positions: quadratic (16k characters took 1.5 s, 1 MB
# stalled a page for a minute). So an address is only looked for where a run starts, and each
# run is read once (possessive `++`: no re-reading on the way back either); right after an
# address, where the old pattern also started ("a@b.com+c@d.com"), it is tried in place.
# Same matches as the old pattern, in linear time (tests/accounts/test_masking.py).
_LOCAL_CHAR = r"[\w.!#$%&'*+/=?^`{|}~-]"
_ADDRESS = rf"{_LOCAL_CHAR}++@[\w-]++(?:\.[\w-]++)+"
_ADDRESS_AT_RUN_START = re.compile(rf"(?<!{_LOCAL_CHAR}){_ADDRESS}")
_ADDRESS_HERE = re.compile(_ADDRESS)


# A plain address, dot-atoms on both sides: parseaddr gives it back unchanged.
_PLAIN_ADDRESS = re.compile(
    r"([A-Za-z0-9_%+-])[A-Za-z0-9_%+-]*(?:\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)


def mask_recipient(value: str | None) -> str:
    """Hide most of an email address, phone number or other recipient id.

    ``chloe.martin@example.com`` → ``c•••@example.com`` (first character and domain);
    ``+14155550118`` → ``+1•••••0118`` (country code and last four digits);
    ``dev_ccffd0b670`` → ``dev•••`` (first three characters; ``•••`` alone for short ids).
    """
    if not value:
        return ""
    value = value.strip()
    plain = _PLAIN_ADDRESS.fullmatch(value)
    if plain is not None:
        # Nearly every recipient: what parseaddr (~9 µs, a third of an export row) would give.
        return f"{plain[1]}{MASK}@{plain[2]}"
    phone = _PHONE.fullmatch(value)
    if phone:
        return (phone["scheme"] or "") + mask_phone(phone["number"])
    _, address = parseaddr(value)
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}{MASK}@{domain}"
    return f"{value[:3]}{MASK}" if len(value) > 6 else MASK


def mask_phone(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    try:
        country = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        country = None
    prefix = f"+{country}" if country and digits.startswith(str(country)) else "+"
    return f"{prefix}•••••{digits[-4:]}"


def mask_text(text: str | None) -> str:
    """Mask the email addresses and international phone numbers inside free text."""
    if not text:
        return text or ""
    if "@" in text:
        text = _mask_addresses(text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)


def _mask_addresses(text: str) -> str:
    pieces = []
    done = 0
    found = _ADDRESS_AT_RUN_START.search(text)
    while found is not None:
        pieces += (text[done : found.start()], mask_recipient(found.group()))
        done = found.end()
        found = _ADDRESS_HERE.match(text, done) or _ADDRESS_AT_RUN_START.search(text, done)
    pieces.append(text[done:])
    return "".join(pieces)


# Where a text shown in part may be cut so that its part is masked exactly as in the whole text:
# before a character no address or phone number holds, or before a space or parenthesis that
# follows no character of a phone number.
_SAFE_CUT = re.compile(r"[^\w.!#$%&'*+/=?^`{|}~@ ()-]|(?<![\d ().+-])[ ()]")
# The same, for the text read backwards from the limit.
_SAFE_CUT_BACKWARDS = re.compile(r"[^\w.!#$%&'*+/=?^`{|}~@ ()-]|[ ()](?![\d ().+-])")
# An address is at most 64 + 1 + 253 characters: a cut is looked for this far past the limit.
_CUT_SLACK = 400


def shown_text(text: str | None, *, personal: bool, limit: int = SHOWN_CHARS) -> str:
    """What a page or an export may show of a free text: masked unless `personal`, and at most
    about `limit` characters, with a note saying how many were left out.

    Its cost grows with `limit`, not with the text: a megabyte-long reason costs what a short
    one does. Cut where masking the part masks it as masking the whole would, so no address or
    number is shown half (and so unmasked); a run of address characters longer than any address
    across the limit is left out whole.
    """
    if not text:
        return ""
    if len(text) <= limit:
        return text if personal else mask_text(text)
    if personal:
        return cut_note(text[:limit], len(text) - limit)
    cut = masking_cut(text, limit)
    if cut == len(text):
        return mask_text(text)
    return cut_note(mask_text(text[:cut]), len(text) - cut)


def cut_note(shown: str, left_out: int) -> str:
    note = f"… [{left_out:,} more characters not shown]"
    return f"{shown} {note}" if shown else note


def masking_cut(text: str, limit: int) -> int:
    """A length near `limit` to cut `text` at, such that the masked cut text is the start of
    the masked text."""
    after = _SAFE_CUT.search(text, limit, limit + _CUT_SLACK)
    if after is not None:
        return after.start()
    if len(text) <= limit + _CUT_SLACK:
        return len(text)
    before = _SAFE_CUT_BACKWARDS.search(text[:limit][::-1])
    return limit - 1 - before.start() if before is not None else 0
