"""Pages about sources and what they sent: endpoints, counts, quarantine, mapping, tokens."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Max, Min, OuterRef, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from notifwatch.accounts.access import READ_ROLES, role_required, sees_personal_data
from notifwatch.accounts.masking import shown_text
from notifwatch.accounts.models import Role
from notifwatch.deliveries.models import Notification
from notifwatch.ingest.actions import (
    TOKEN_KINDS,
    latest_reprocess,
    rotate_token,
    set_mapping,
    waiting_raw_events,
)
from notifwatch.ingest.forms import MappingForm, mapping_text
from notifwatch.ingest.models import Outcome, RawEvent, RefusedCallTally, Source, SourceKind
from notifwatch.ingest.parsing import MAX_SHOWN_BODY, pretty_body
from notifwatch.ingest.providers import SetupHelp, adapter_for
from notifwatch.ingest.tasks import reprocess_source

LATEST_QUARANTINED = 20
LATEST_FAILED = 20
# A reason or problem can quote whatever a sender put in a field: on the raw event's page this
# much of each, and this many problems (a 5 MB batch can hold 100,000 unreadable items).
RAW_TEXT_CHARS = 20_000
MAX_SHOWN_PROBLEMS = 100
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


def is_admin(request: HttpRequest) -> bool:
    return request.user.membership.role == Role.ADMIN


@role_required(*READ_ROLES)
def source_list(request: HttpRequest) -> HttpResponse:
    facts = source_facts(list(Source.objects.all()))
    return render(request, "ingest/source_list.html", {"facts": facts})


@role_required(*READ_ROLES)
def source_detail(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug)
    return render(request, "ingest/source_detail.html", detail_context(request, source))


def detail_context(request: HttpRequest, source: Source, **extra) -> dict:
    quarantined = list(
        RawEvent.objects.filter(source=source, outcome=Outcome.QUARANTINED)
        .order_by("-received_at", "-id")
        .defer("body")[:LATEST_QUARANTINED]
    )
    failed = list(
        RawEvent.objects.filter(source=source, outcome=Outcome.FAILED)
        .order_by("-received_at", "-id")
        .defer("body", "last_error")[:LATEST_FAILED]
    )
    personal = sees_personal_data(request.user)
    for raw in quarantined + failed:
        raw.reason = shown_text(raw.reason, personal=personal)
    ctx = {
        "source": source,
        "facts": source_facts([source])[0],
        "quarantined": quarantined,
        "failed": failed,
        "last_run": latest_reprocess(source),
        "retry_attempts": settings.NOTIFWATCH_RAW_RETRY_ATTEMPTS,
        "mapping_text": mapping_text(source.mapping),
        "is_admin": is_admin(request),
        "form": MappingForm(initial={"mapping": mapping_text(source.mapping)}),
    }
    return ctx | extra


def render_detail(request: HttpRequest, source: Source, partial: str, **extra) -> HttpResponse:
    """The whole page, or only the fragment the htmx control asked to refresh."""
    template = "ingest/source_detail.html"
    if request.htmx:
        template += f"#{partial}"
    return render(request, template, detail_context(request, source, **extra))


@role_required(Role.ADMIN)
@require_POST
def source_mapping(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug)
    form = MappingForm(request.POST)
    if not form.is_valid():
        return render_detail(request, source, "mapping", form=form, editing=True)
    set_mapping(source, form.cleaned_data["mapping"], actor=request.user)
    notice = "Mapping saved. Reprocess quarantined events to apply it to them."
    if request.htmx:
        return render_detail(request, source, "mapping", mapping_notice=notice)
    messages.success(request, notice)
    return redirect("source_detail", slug=source.slug)


@role_required(Role.ADMIN)
@require_POST
def source_reprocess(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug)
    waiting = waiting_raw_events(source).count()
    if waiting:
        reprocess_source.enqueue(source.pk, request.user.pk)
        plural = "event" if waiting == 1 else "events"
        notice = f"Reprocessing {waiting} quarantined {plural}…"
    else:
        notice = "Nothing to reprocess: this source has no quarantined events."
    if request.htmx:
        # The counts above the list changed too: they ride along as an out-of-band swap.
        return render_detail(request, source, "quarantine", quarantine_notice=notice, oob=True)
    messages.info(request, notice)
    return redirect("source_detail", slug=source.slug)


@role_required(Role.ADMIN)
def source_rotate_token(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug)
    ctx = {"source": source, "rotatable": source.kind in TOKEN_KINDS}
    if request.method != "POST":
        # Without JavaScript there is no confirm dialog: this page is the confirmation.
        return render(request, "ingest/source_rotate_token.html", ctx)
    if not ctx["rotatable"]:
        return render(request, "ingest/source_rotate_token.html", ctx, status=400)
    token = rotate_token(source, actor=request.user)
    # The token is shown in this response only; it must not be redirected to or cached.
    if request.htmx:
        response = render_detail(request, source, "credential", new_token=token)
    else:
        response = render(request, "ingest/source_rotate_token.html", ctx | {"new_token": token})
    response["Cache-Control"] = "no-store"
    return response


@role_required(*READ_ROLES)
def raw_event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    raw = get_object_or_404(RawEvent.objects.select_related("source"), pk=pk)
    personal = sees_personal_data(request.user)
    body, body_kind = pretty_body(bytes(raw.body)) if personal else ("", "")
    problems = raw.problems if isinstance(raw.problems, list) else []
    raw.reason = shown_text(raw.reason, personal=personal, limit=RAW_TEXT_CHARS)
    raw.last_error = shown_text(raw.last_error, personal=personal, limit=RAW_TEXT_CHARS)
    shown_problems = [
        {**p, "message": shown_text(str(p.get("message", "")), personal=personal)}
        for p in problems[:MAX_SHOWN_PROBLEMS]
        if isinstance(p, dict)
    ]
    ctx = {
        "raw": raw,
        "problems": shown_problems,
        "problems_left_out": max(len(problems) - MAX_SHOWN_PROBLEMS, 0),
        "headers": sorted(raw.headers.items()) if isinstance(raw.headers, dict) else [],
        "personal": personal,
        "body": body,
        "body_kind": body_kind,
        "body_size": len(raw.body),
        "body_cut": personal and len(raw.body) > MAX_SHOWN_BODY,
        "retry_attempts": settings.NOTIFWATCH_RAW_RETRY_ATTEMPTS,
    }
    return render(request, "ingest/raw_event_detail.html", ctx)
