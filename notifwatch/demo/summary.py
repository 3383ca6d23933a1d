"""What `seed_demo` prints about the loaded data."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.models import Outcome, RawEvent, Source


def summary_lines() -> list[str]:
    """Counts per source, status, reason and raw event outcome, and the top refusal reasons."""
    total = Notification.objects.count()
    lines = []
    per_source = dict(
        Notification.objects.values("source__slug")
        .annotate(n=Count("id"))
        .values_list("source__slug", "n")
    )
    lines.append(
        f"Sources ({Source.objects.count()}): "
        + ", ".join(
            f"{s.slug} {per_source.get(s.slug, 0):,}" for s in Source.objects.order_by("slug")
        )
    )
    by_status = Counter(
        dict(
            Notification.objects.values("final_status")
            .annotate(n=Count("id"))
            .values_list("final_status", "n")
        )
    )
    lines.append(
        f"Notifications ({total:,}): "
        + ", ".join(
            f"{status} {n:,} ({100 * n / max(total, 1):.1f}%)"
            for status, n in by_status.most_common()
        )
    )
    categories = Counter(
        dict(
            Notification.objects.exclude(reason_category="")
            .values("reason_category")
            .annotate(n=Count("id"))
            .values_list("reason_category", "n")
        )
    )
    lines.append("Reasons: " + ", ".join(f"{c} {n:,}" for c, n in categories.most_common()))
    failures = Notification.objects.filter(counts_as_failure=True).count()
    dup_sends = Notification.objects.filter(duplicate_sends__gt=0).count()
    dup_events = Notification.objects.filter(duplicate_events__gt=0).count()
    no_customer = Notification.objects.exclude(identity_problem="").count()
    lines.append(
        f"Counted as failures {failures:,}; duplicate sends {dup_sends:,}; repeated provider "
        f"events on {dup_events:,}; no customer id {no_customer:,}"
    )
    raws = Counter(
        dict(RawEvent.objects.values("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
    )
    lines.append("Raw events: " + ", ".join(f"{o} {n:,}" for o, n in raws.most_common()))
    reasons = Counter(
        dict(
            RawEvent.objects.filter(outcome__in=[Outcome.QUARANTINED, Outcome.REJECTED])
            .values("reason")
            .annotate(n=Count("id"))
            .values_list("reason", "n")
        )
    )
    for reason, n in reasons.most_common(6):
        lines.append(f"  {n:>5} × {reason[:100]}")
    return lines
