"""The audit page and its export: every human and system action, filterable."""

from django.apps import apps
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifwatch.accounts.access import READ_ROLES, role_required, sees_personal_data
from notifwatch.accounts.masking import shown_text
from notifwatch.audit.downloads import EXPORT_ROLES, download
from notifwatch.audit.filters import AuditFilter
from notifwatch.audit.models import AuditEntry
from notifwatch.audit.wording import VALUE_CHARS, entries_in_words
from notifwatch.lib.paging import older_than, parse_time_cursor, time_cursor

PAGE = 50


@role_required(*READ_ROLES)
def audit_list(request: HttpRequest) -> HttpResponse:
    filtered = AuditFilter(request.GET, queryset=AuditEntry.objects.select_related("actor"))
    entries = (
        filtered.qs.order_by("-at", "-id") if filtered.is_valid() else AuditEntry.objects.none()
    )
    before = parse_time_cursor(request.GET.get("before", ""))
    if before:
        entries = older_than(entries, "at", *before)
    page = list(entries[: PAGE + 1])
    more = len(page) > PAGE
    page = page[:PAGE]
    personal = sees_personal_data(request.user)
    for entry, words in zip(page, entries_in_words(page, personal=personal), strict=True):
        entry.words = words
        # An exception's title (its target's name) may quote an address or a number.
        entry.target_label = shown_text(entry.target_label, personal=personal, limit=VALUE_CHARS)
    query = request.GET.copy()
    query.pop("before", None)
    next_query = None
    if more:
        query["before"] = time_cursor(page[-1].at, page[-1].pk)
        next_query = query.urlencode()
        query.pop("before")
    template = "audit/audit_list.html#entries" if request.htmx else "audit/audit_list.html"
    return render(
        request,
        template,
        {
            "filter": filtered,
            "entries": page,
            "next_query": next_query,
            "filter_query": query.urlencode(),
            "may_export": request.user.membership.role in EXPORT_ROLES,
            "target_words": target_words(request.GET, personal),
        },
    )


def target_words(query, personal: bool) -> str:
    """'Exception #9: Order confirmation emails bounced…' for a trail reached from an object's
    page, so the filter reads as words rather than `failures.failuregroup` and `9`. The name is
    the one the trail itself recorded (what the list shows anyway), never read from the object."""
    target_type, target_id = query.get("target_type", ""), query.get("target_id", "")
    if not (target_type and target_id):
        return ""
    try:
        what = str(apps.get_model(target_type)._meta.verbose_name)
    except (LookupError, ValueError):
        what = target_type
    if target_type == "failures.failuregroup":
        what = "exception"  # the model is named for Python; people call it an exception
    label = (
        AuditEntry.objects.filter(target_type=target_type, target_id=target_id)
        .order_by("-at", "-id")
        .values_list("target_label", flat=True)
        .first()
    )
    label = (label or "").removeprefix(f"#{target_id} ")  # an exception names itself "#9 title"
    name = f": {shown_text(label, personal=personal, limit=VALUE_CHARS)}" if label else ""
    return f"{what[:1].upper()}{what[1:]} #{target_id}{name}"


@role_required(*EXPORT_ROLES)
def audit_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Exactly the entries the page's filter shows, streamed; the export is itself audited."""
    filtered = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    if not filtered.is_valid():
        return HttpResponse("invalid filter", status=400, content_type="text/plain")
    filters = dict(request.GET.items())
    return download(request, "audit", fmt, filtered.qs, filters=filters, name="audit")
