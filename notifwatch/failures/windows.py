"""Timing windows: how long a notification may go without a final status before it is late.

An admin sets windows per source and purpose (TimingWindow rows); where none applies, the
purpose's name says what kind of message it is and a default for that kind is used.
"""

import re
from datetime import timedelta

from notifwatch.failures.models import TimingWindow

FALLBACK = timedelta(hours=1)

# First match wins, so the more specific kinds come first: "order_shipped" is a shipping
# update, not an order confirmation; "password_reset_code" is a reset, not a login code.
DEFAULTS: tuple[tuple[timedelta, frozenset[str]], ...] = (
    (
        timedelta(minutes=10),
        frozenset({"password", "reset", "recovery"}),
    ),
    (
        timedelta(minutes=2),
        frozenset({"otp", "verification", "verify", "login", "signin", "2fa", "mfa", "magic"}),
    ),
    (
        timedelta(hours=1),
        frozenset(
            {"shipping", "shipped", "shipment", "delivery", "dispatch", "dispatched", "tracking"}
        ),
    ),
    (
        timedelta(minutes=15),
        frozenset({"confirmation", "confirm", "confirmed", "receipt", "placed"}),
    ),
    (timedelta(hours=1), frozenset({"ticket", "support", "case"})),
    (
        timedelta(days=1),
        frozenset(
            {
                "invoice",
                "renewal",
                "renew",
                "billing",
                "payment",
                "subscription",
                "dunning",
                "statement",
            }
        ),
    ),
    (
        timedelta(days=1),
        frozenset(
            {
                "marketing",
                "newsletter",
                "review",
                "feedback",
                "campaign",
                "promo",
                "promotion",
                "sale",
                "survey",
                "digest",
            }
        ),
    ),
)


# "code" alone says little ("promo_code_campaign"): it means a login code only when no other
# word of the name says what the message is.
WEAK_DEFAULTS: tuple[tuple[timedelta, frozenset[str]], ...] = (
    (timedelta(minutes=2), frozenset({"code", "pin", "passcode"})),
)


def default_window(purpose: str) -> timedelta:
    """The default for a purpose, read from the words of its name."""
    words = set(re.split(r"[^a-z0-9]+", purpose.lower()))
    for window, keywords in (*DEFAULTS, *WEAK_DEFAULTS):
        if words & keywords:
            return window
    return FALLBACK


class Windows:
    """The configured windows, read once per detection pass."""

    def __init__(self):
        self.configured = {
            (source_id, purpose): timedelta(seconds=seconds)
            for source_id, purpose, seconds in TimingWindow.objects.values_list(
                "source_id", "purpose", "seconds"
            )
        }
        self.cache: dict[tuple[int | None, str], timedelta] = {}

    def window_for(self, source_id: int | None, purpose: str) -> timedelta:
        key = (source_id, purpose)
        if key not in self.cache:
            self.cache[key] = self.lookup(source_id, purpose)
        return self.cache[key]

    def lookup(self, source_id: int | None, purpose: str) -> timedelta:
        # What an admin set wins over any guess from the name, most specific setting first.
        for candidate in ((source_id, purpose), (None, purpose), (source_id, ""), (None, "")):
            if candidate in self.configured:
                return self.configured[candidate]
        return default_window(purpose)


def window_for(source_id: int | None, purpose: str, windows: Windows | None = None) -> timedelta:
    """How long a notification of this source and purpose may take; pass `windows` to reuse
    one pass's reading of the settings."""
    return (windows or Windows()).window_for(source_id, purpose)
