"""What a source has sent and how its endpoint fares: the facts the sources pages and the read
API both show, computed in a few grouped queries however many sources there are."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, OuterRef, Subquery, Sum
from django.urls import reverse
from django.utils import timezone

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import TOKEN_KINDS
from notifwatch.ingest.models import Outcome, RawEvent, RefusedCallTally, Source, SourceKind
from notifwatch.ingest.providers import SetupHelp, adapter_for

REJECTED_WINDOW = timedelta(days=7)


@dataclass
class SourceFacts:
    source: Source
    webhook_url: str
    api_url: str = ""
    by_outcome: dict[str, int] = field(default_factory=dict)
    notifications: int = 0
    last_received: datetime | None = None
    # Refused calls in the last REJECTED_WINDOW: usually a rotated secret on the sender's side.
    rejected: int = 0
    rejected_since: datetime | None = None
    rejected_reason: str = ""
    setup: SetupHelp | None = None

    @property
    def raw_total(self) -> int:
        return sum(self.by_outcome.values())

    @property
    def quarantined(self) -> int:
        return self.by_outcome.get(Outcome.QUARANTINED, 0)

    @property
    def failed(self) -> int:
        """Raw events processing crashed on every automatic retry: they wait for a person."""
        return self.by_outcome.get(Outcome.FAILED, 0)

    @property
    def outcomes(self) -> list[tuple[str, str, int]]:
        return [
            (value, label, self.by_outcome[value])
            for value, label in Outcome.choices
            if self.by_outcome.get(value)
        ]

    @property
    def rotatable(self) -> bool:
        return self.source.kind in TOKEN_KINDS


def source_facts(sources: list[Source]) -> list[SourceFacts]:
    """Endpoints and counts of these sources in two grouped queries, however many sources."""
    facts = {s.pk: SourceFacts(source=s, webhook_url=endpoint(s)) for s in sources}
    for s in sources:
        if s.kind == SourceKind.JSON:
            facts[s.pk].api_url = settings.NOTIFWATCH_BASE_URL + reverse("api_events")
    raw_counts = (
        RawEvent.objects.filter(source_id__in=facts)
        .values("source_id", "outcome")
        .annotate(n=Count("id"), last=Max("received_at"))
    )
    for row in raw_counts:
        f = facts[row["source_id"]]
        f.by_outcome[row["outcome"]] = row["n"]
        f.last_received = max(filter(None, (f.last_received, row["last"])), default=None)
    notification_counts = (
        Notification.objects.filter(source_id__in=facts)
        .values("source_id")
        .annotate(n=Count("id"))
        .values_list("source_id", "n")
    )
    for source_id, n in notification_counts:
        facts[source_id].notifications = n
    rejected = RawEvent.objects.filter(
        source_id__in=facts,
        outcome=Outcome.REJECTED,
        received_at__gte=timezone.now() - REJECTED_WINDOW,
    )
    latest_reason = (
        rejected.filter(source_id=OuterRef("source_id")).order_by("-received_at").values("reason")
    )
    for row in (
        rejected.values("source_id")
        .annotate(n=Count("id"), since=Min("received_at"), reason=Subquery(latest_reason[:1]))
        .order_by()
    ):
        f = facts[row["source_id"]]
        f.rejected, f.rejected_since, f.rejected_reason = row["n"], row["since"], row["reason"]
    # Calls beyond the stored ones of a flood are only counted (ingest.views.tally_refused_call).
    for row in (
        RefusedCallTally.objects.filter(
            source_id__in=facts, hour__gte=timezone.now() - REJECTED_WINDOW
        )
        .values("source_id")
        .annotate(n=Sum("count"), since=Min("hour"))
        .order_by()
    ):
        f = facts[row["source_id"]]
        f.rejected += row["n"]
        f.rejected_since = min(filter(None, (f.rejected_since, row["since"])))
    for f in facts.values():
        adapter = adapter_for(f.source.kind)
        f.setup = adapter.setup if adapter else None
    return list(facts.values())


def endpoint(source: Source) -> str:
    return settings.NOTIFWATCH_BASE_URL + reverse("source_webhook", args=[source.slug])
