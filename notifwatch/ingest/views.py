"""HTTP ingest: the canonical events API and per-source webhook endpoints."""

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifwatch.ingest import standard_webhooks
from notifwatch.ingest.credentials import credential_hash
from notifwatch.ingest.models import Outcome, Source, SourceKind, Transport
from notifwatch.ingest.processing import process_raw_event, store_raw
from notifwatch.ingest.providers import Rejected, adapter_for, stored_headers

logger = logging.getLogger(__name__)


def unavailable_when_database_is_down(view: Callable) -> Callable:
    """503 with Retry-After while the database is away: senders retry on it, not on a 500."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DatabaseError:
            logger.exception("database unavailable during ingest")
            response = JsonResponse(
                {"error": "storage is unavailable, nothing was stored; retry later"}, status=503
            )
            response["Retry-After"] = "30"
            return response

    return wrapper


def bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def too_large(request: HttpRequest) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return length > settings.NOTIFWATCH_MAX_BODY_BYTES


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


@csrf_exempt
@require_POST
@unavailable_when_database_is_down
def api_events(request: HttpRequest) -> HttpResponse:
    token = bearer_token(request)
    source = (
        Source.objects.filter(
            credential_hash=credential_hash(token), kind=SourceKind.JSON, is_active=True
        ).first()
        if token
        else None
    )
    if source is None:
        return error(401, "missing or unknown bearer token (Authorization: Bearer <source token>)")
    return receive(request, source, Transport.API)


@csrf_exempt
@require_http_methods(["POST", "HEAD", "GET"])
@unavailable_when_database_is_down
def source_webhook(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug, is_active=True)
    if request.method in ("HEAD", "GET"):
        # Some providers check the URL with a HEAD or GET request when it is configured.
        return HttpResponse()
    if source.kind == SourceKind.JSON:
        try:
            authenticate_json_sender(source, request)
        except Rejected as rejected:
            return reject(request, source, rejected)
        return receive(request, source, Transport.WEBHOOK)
    adapter = adapter_for(source.kind)
    if adapter is None:
        return error(404, f"no webhook adapter for kind {source.kind!r}")
    if too_large(request):
        return error(413, f"body larger than {settings.NOTIFWATCH_MAX_BODY_BYTES} bytes")
    try:
        adapter.authenticate(source, request)
    except Rejected as rejected:
        return reject(request, source, rejected)
    return receive(request, source, Transport.WEBHOOK, adapter=adapter)


def authenticate_json_sender(source: Source, request: HttpRequest) -> None:
    """A signed sender (Standard Webhooks) or a bearer token, whichever the source was given."""
    if source.signing_key:
        standard_webhooks.verify(source.signing_key, request.headers, request.body)
        return
    token = bearer_token(request)
    if not token or credential_hash(token) != source.credential_hash:
        raise Rejected("missing or wrong bearer token")


def reject(request: HttpRequest, source: Source, rejected: Rejected) -> HttpResponse:
    """Count and keep a refused call (truncated: it is not trusted), then refuse it."""
    challenge = getattr(rejected, "www_authenticate", None)
    if challenge and source.kind == SourceKind.SES and "Authorization" not in request.headers:
        # Amazon SNS sends credentials only once challenged, for every message: its first
        # try is half of the handshake, not a rejected call. Other providers put the
        # credentials in the URL, so a call without them is counted (a misconfiguration).
        response = error(401, rejected.reason)
        response["WWW-Authenticate"] = challenge
        return response
    store_raw(
        source,
        Transport.WEBHOOK,
        request.body[:4096],
        content_type=request.content_type or "",
        headers=stored_headers(request),
        outcome=Outcome.REJECTED,
        reason=rejected.reason,
    )
    response = error(rejected.status, rejected.reason)
    if challenge:
        response["WWW-Authenticate"] = challenge
    return response


def receive(request: HttpRequest, source: Source, transport: str, adapter=None) -> HttpResponse:
    if too_large(request):
        return error(
            413,
            f"body larger than {settings.NOTIFWATCH_MAX_BODY_BYTES} bytes; send smaller batches",
        )
    raw = store_raw(
        source,
        transport,
        request.body,
        content_type=request.content_type or "",
        headers=stored_headers(request),
    )
    try:
        process_with_retry(raw)
    except Exception:
        # The raw event is stored (outcome "received"); `manage.py reprocess` picks it up.
        # 202, not 5xx: the sender must not resend what we already hold.
        logger.exception("processing raw event %s failed; left as received", raw.pk)
        return JsonResponse({"stored": raw.pk, "status": "queued"}, status=202)
    if adapter is not None and raw.outcome != Outcome.QUARANTINED:
        reply = getattr(adapter, "reply", None)
        answer = reply(source, raw) if reply else None
        if answer is not None:
            return answer
    if raw.outcome == Outcome.QUARANTINED:
        status = 400 if raw.problems and raw.problems[0].get("field") is None else 422
        return JsonResponse(
            {
                "error": "nothing from this request was recorded: " + raw.reason,
                "errors": raw.problems,
                "stored": raw.pk,
            },
            status=status,
        )
    return JsonResponse(
        {"stored": raw.pk, "status": raw.outcome, "recorded": raw.event_count}, status=200
    )


def process_with_retry(raw, attempts: int = 3) -> None:
    """Two requests creating the same new notification at once: the loser retries and then
    finds the winner's rows (the unique constraints decide, not a lock held in Python)."""
    for attempt in range(attempts):
        try:
            process_raw_event(raw)
            return
        except IntegrityError:
            if attempt == attempts - 1:
                raise


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
