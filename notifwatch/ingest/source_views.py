"""Pages about sources and what they sent: endpoints, counts, quarantine, mapping, tokens."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from notifwatch.accounts.access import READ_ROLES, role_required, sees_personal_data
from notifwatch.accounts.masking import shown_text
from notifwatch.accounts.models import Role
from notifwatch.ingest.actions import (
    TOKEN_KINDS,
    latest_reprocess,
    rotate_token,
    set_mapping,
    waiting_raw_events,
)
from notifwatch.ingest.forms import MappingForm, mapping_text
from notifwatch.ingest.models import Outcome, RawEvent, Source
from notifwatch.ingest.parsing import MAX_SHOWN_BODY, pretty_body
from notifwatch.ingest.source_facts import source_facts
from notifwatch.ingest.tasks import reprocess_source

LATEST_QUARANTINED = 20
LATEST_FAILED = 20
# A reason or problem can quote whatever a sender put in a field: on the raw event's page this
# much of each, and this many problems (a 5 MB batch can hold 100,000 unreadable items).
RAW_TEXT_CHARS = 20_000
MAX_SHOWN_PROBLEMS = 100


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
