"""The read API's endpoints (GET, JSON, bearer tokens) and the page where people manage tokens."""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required, sees_personal_data
from notifwatch.accounts.middleware import user_zone
from notifwatch.api.forms import NewTokenForm, RevokeForm
from notifwatch.api.openapi import openapi_document
from notifwatch.api.reading import (
    Page,
    Refused,
    exception_detail,
    exceptions_page,
    notifications_page,
    sources_health,
)
from notifwatch.api.tokens import create_token, record_read, revoke_token, token_for, visible_tokens

# (JSON body, how many items it holds) from an endpoint, for the answer and its audit entry.
Answer = tuple[dict, int]


def refusal(status: int, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def api_endpoint(view: Callable[..., Answer]) -> Callable[..., HttpResponse]:
    """A bearer token (never the session), its user's role and masking, and one audit entry."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token = token_for(request.headers.get("Authorization", ""))
        if token is None:
            response = refusal(401, "Send a live API token: Authorization: Bearer nwu_…")
            response["WWW-Authenticate"] = 'Bearer realm="notifwatch"'
            return response
        path = request.get_full_path()
        membership = membership_of(token.user)
        if membership is None or membership.role not in READ_ROLES:
            record_read(token, path, 0, 403)
            return refusal(403, "This token's user has no role in notifwatch.")
        # Days in date filters are the user's days, as on the pages.
        with timezone.override(user_zone(token.user)):
            try:
                body, count = view(request, token.user, *args, **kwargs)
            except Refused as refused:
                record_read(token, path, 0, refused.status)
                return refusal(refused.status, refused.message, **errors_of(refused))
        record_read(token, path, count, 200)
        response = JsonResponse(body)
        # Masked per user: no shared cache may keep one user's answer for another.
        response["Cache-Control"] = "private, no-store"
        return response

    return wrapper


def errors_of(refused: Refused) -> dict:
    return {"errors": refused.errors} if refused.errors else {}


def paged(request: HttpRequest, page: Page) -> Answer:
    body: dict = {"items": page.items}
    if page.next_query is not None:
        body["next"] = request.build_absolute_uri(f"{request.path}?{page.next_query}")
    return body, len(page.items)


@api_endpoint
def exceptions(request: HttpRequest, user) -> Answer:
    personal = sees_personal_data(user)
    return paged(request, exceptions_page(request.GET, personal=personal, request=request))


@api_endpoint
def exception(request: HttpRequest, user, pk: int) -> Answer:
    return exception_detail(pk, personal=sees_personal_data(user)), 1


@api_endpoint
def notifications(request: HttpRequest, user) -> Answer:
    personal = sees_personal_data(user)
    return paged(request, notifications_page(request.GET, personal=personal, request=request))


@api_endpoint
def sources(request: HttpRequest, user) -> Answer:
    items = sources_health(personal=sees_personal_data(user))
    return {"items": items}, len(items)


@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    """The API's description: public, like any API's documentation; it holds no data."""
    server = request.build_absolute_uri(reverse("api_exceptions")).rsplit("/", 1)[0]
    return JsonResponse(openapi_document(server), json_dumps_params={"indent": 2})


# --- Tokens, for people ---------------------------------------------------------------------


@role_required(*READ_ROLES)
def api_tokens(request: HttpRequest) -> HttpResponse:
    """Create a token (shown once, in this answer only) and see the ones in use."""
    form = NewTokenForm(request.POST if request.method == "POST" else None)
    issued = None
    if form.is_bound and form.is_valid():
        issued = create_token(request.user, form.cleaned_data["name"], actor=request.user)
        form = NewTokenForm()
    ctx = {
        "form": form,
        "issued": issued,
        "tokens": visible_tokens(request.user),
        "is_admin": membership_of(request.user).role == "admin",
        "openapi_url": request.build_absolute_uri(reverse("api_openapi")),
        "exceptions_url": request.build_absolute_uri(reverse("api_exceptions")),
    }
    response = render(request, "api/api_tokens.html", ctx, status=400 if form.errors else 200)
    # The new token is in this page only: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@role_required(*READ_ROLES)
@require_POST
def api_token_revoke(request: HttpRequest) -> HttpResponse:
    form = RevokeForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Which token? Revoke it from the tokens page.")
    # Someone else's token is not found, unless an admin asks.
    token = get_object_or_404(visible_tokens(request.user), pk=form.cleaned_data["token"])
    if revoke_token(token, actor=request.user):
        messages.success(request, f"Revoked “{token.name}” (…{token.hint}): it stops working now.")
    else:
        messages.info(request, f"“{token.name}” was already revoked.")
    return redirect("api_tokens")
