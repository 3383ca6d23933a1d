"""Counting provider codes the reason catalog falls back on, so the catalog can grow."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import F
from django.db.models.functions import Greatest

from notifwatch.failures.models import UnknownCode


def count_unknown_codes(seen: Iterable[tuple[str, str, str, datetime]]) -> None:
    """`seen` holds (provider, code, message, when) of events explained only by fallback."""
    batch: dict[tuple[str, str], list] = {}
    for provider, code, message, when in seen:
        key = (provider or "unknown", code or "(no code)")
        count, first, last, sample = batch.get(key, (0, when, when, message))
        batch[key] = [count + 1, min(first, when), max(last, when), sample or message]
    if not batch:
        return
    # Insert the new codes, then add to every code's counter in SQL (never read-modify-write).
    UnknownCode.objects.bulk_create(
        [
            UnknownCode(
                provider=p,
                code=c,
                occurrences=0,
                first_seen=first,
                last_seen=last,
                sample_message=(sample or "")[:1000],
            )
            for (p, c), (_, first, last, sample) in batch.items()
        ],
        ignore_conflicts=True,
    )
    for (provider, code), (count, _, last, _) in batch.items():
        UnknownCode.objects.filter(provider=provider, code=code).update(
            occurrences=F("occurrences") + count, last_seen=Greatest("last_seen", last)
        )
