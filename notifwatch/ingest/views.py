"""HTTP ingest: the canonical events API and per-source webhook endpoints."""

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from notifwatch.ingest import standard_webhooks
from notifwatch.ingest.credentials import credential_hash
from notifwatch.ingest.models import (
    Outcome,
    RawEvent,
    RefusedCallTally,
    Source,
    SourceKind,
    Transport,
)
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


def content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def too_large(request: HttpRequest) -> bool:
    return content_length(request) > settings.NOTIFWATCH_MAX_BODY_BYTES


# A refused body is read and thrown away up to this size, so the sender's keep-alive
# connection stays usable; gunicorn itself drains only 64 KB and then closes the connection
# under a client that was told "keep-alive", whose next request then meets a closed socket.
def drain_limit() -> int:
    return max(4 * settings.NOTIFWATCH_MAX_BODY_BYTES, 1024 * 1024)


def refuse_too_large(request: HttpRequest) -> JsonResponse:
    remaining = min(content_length(request), drain_limit())
    while remaining > 0:
        chunk = request.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        remaining -= len(chunk)
    return error(
        413, f"body larger than {settings.NOTIFWATCH_MAX_BODY_BYTES} bytes; send smaller batches"
    )


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
    if too_large(request):
        return refuse_too_large(request)
    return process_and_answer(store_request(request, source, Transport.API), source)


@csrf_exempt
@require_http_methods(["POST", "HEAD", "GET"])
@unavailable_when_database_is_down
def source_webhook(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(Source, slug=slug, is_active=True)
    if request.method in ("HEAD", "GET"):
        # Some providers check the URL with a HEAD or GET request when it is configured.
        return HttpResponse()
    adapter = adapter_for(source.kind)
    if adapter is None and source.kind != SourceKind.JSON:
        return error(404, f"no webhook adapter for kind {source.kind!r}")
    if too_large(request):
        return refuse_too_large(request)
    # Read once, before any form parsing: a multipart parser reading the stream itself would
    # leave nothing for the raw event to keep.
    request.body  # noqa: B018
    try:
        # A one-time token remembered by the check (Mailgun) commits with the raw event it let
        # in: a database failing in between must not turn the provider's retry into a "replay".
        with transaction.atomic():
            if adapter is None:
                authenticate_json_sender(source, request)
            else:
                adapter.authenticate(source, request)
            raw = store_request(request, source, Transport.WEBHOOK)
    except Rejected as rejected:
        return reject(request, source, rejected)
    except DatabaseError:
        raise
    except Exception as exc:
        # A body too broken to check its signature (a bad multipart boundary, say) is not
        # trusted: it is refused and counted like any unverified call.
        logger.info("webhook for %s could not be authenticated", source.slug, exc_info=True)
        reason = f"the body could not be read to check it: {type(exc).__name__}"
        return reject(request, source, Rejected(reason, status=400))
    return process_and_answer(raw, source, adapter)


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
    if keeps_refused_bodies(source):
        store_raw(
            source,
            Transport.WEBHOOK,
            request.body[:4096],
            content_type=request.META.get("CONTENT_TYPE", ""),
            headers=stored_headers(request),
            outcome=Outcome.REJECTED,
            reason=rejected.reason,
        )
    else:
        tally_refused_call(source, rejected.reason)
    response = error(rejected.status, rejected.reason)
    if challenge:
        response["WWW-Authenticate"] = challenge
    return response


def keeps_refused_bodies(source: Source) -> bool:
    """The first refused calls of the hour are kept to inspect; a flood is only counted."""
    since = timezone.now() - timedelta(hours=1)
    kept = RawEvent.objects.filter(source=source, outcome=Outcome.REJECTED, received_at__gte=since)
    limit = settings.NOTIFWATCH_REFUSED_BODIES_PER_HOUR
    return kept[:limit].count() < limit


def tally_refused_call(source: Source, reason: str) -> None:
    now = timezone.now()
    table = RefusedCallTally._meta.db_table
    with connection.cursor() as cursor:
        # One statement on SQLite and PostgreSQL alike; concurrent floods add, never overwrite.
        cursor.execute(
            f'INSERT INTO "{table}" (source_id, hour, count, last_at, last_reason) '
            "VALUES (%s, %s, 1, %s, %s) "
            "ON CONFLICT (source_id, hour) DO UPDATE SET "
            f'count = "{table}".count + 1, last_at = excluded.last_at, '
            "last_reason = excluded.last_reason",
            [source.pk, now.replace(minute=0, second=0, microsecond=0), now, reason[:500]],
        )


def store_request(request: HttpRequest, source: Source, transport: str) -> RawEvent:
    return store_raw(
        source,
        transport,
        request.body,
        # Whole, with its parameters: a multipart body cannot be read again without its boundary.
        content_type=request.META.get("CONTENT_TYPE", ""),
        headers=stored_headers(request),
    )


def process_and_answer(raw: RawEvent, source: Source, adapter=None) -> HttpResponse:
    try:
        process_with_retry(raw)
    except Exception:
        # Every kind of bad input is quarantined by processing itself; what is left is a crash
        # of ours or the database going away mid-way. The body is stored (outcome "received")
        # and the worker's retry job processes it (and shows it if it keeps failing), so 202:
        # the sender must not resend what we already hold.
        logger.exception("processing raw event %s failed; left for the worker's retry", raw.pk)
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
