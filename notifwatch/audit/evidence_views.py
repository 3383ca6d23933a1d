"""The weekly evidence pack: pick a week, read it as a printable page, download it as a ZIP.

Both the page and the ZIP are exports of evidence, so both are audited (`export.downloaded`,
kind "evidence_pack", with the week and the format "html" or "zip"): a printed page is as much
a copy taken away as a downloaded file.
"""

from datetime import date

from django import forms
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from notifwatch.accounts.access import role_required, sees_personal_data
from notifwatch.audit.downloads import EXPORT_ROLES
from notifwatch.audit.evidence import (
    EXPORT_KIND,
    EvidencePack,
    bundle_name,
    bundle_zip,
    evidence_pack,
    monday_of,
)
from notifwatch.audit.exports import record_export
from notifwatch.failures.models import Review


class WeekForm(forms.Form):
    day = forms.DateField(
        label="Any day of the week",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD, e.g. 2026-11-16."},
    )

    def clean_day(self):
        day = self.cleaned_data["day"]
        if monday_of(day) > monday_of(timezone.localdate()):
            raise forms.ValidationError("That week has not started yet.")
        return day


@role_required(*EXPORT_ROLES)
def evidence_index(request: HttpRequest) -> HttpResponse:
    form = WeekForm(request.GET if "day" in request.GET else None)
    if form.is_valid():
        return redirect("evidence_page", week=monday_of(form.cleaned_data["day"]).isoformat())
    weeks = (
        Review.objects.values("week_start")
        .annotate(
            reviews=Count("id", distinct=True),
            agenda=Count("items"),
            decided=Count("items", filter=~Q(items__decision="")),
            undecided=Count("items", filter=Q(items__decision="")),
            # Undecided items of a review still under way are not carried over yet.
            unfinished=Count("id", filter=Q(completed_at__isnull=True), distinct=True),
        )
        .order_by("-week_start")
    )
    this_week = monday_of(timezone.localdate())
    return render(
        request,
        "audit/evidence_index.html",
        {"form": form, "weeks": weeks, "this_week": this_week},
    )


@role_required(*EXPORT_ROLES)
def evidence_page(request: HttpRequest, week: str) -> HttpResponse:
    monday = week_from(week)
    if monday.isoformat() != week:
        return redirect("evidence_page", week=monday.isoformat())
    pack = pack_for(request, monday)
    # Viewing is recorded too: the page is made to be printed or saved as a PDF.
    audited(request, pack, "html")
    return render(request, "audit/evidence_page.html", {"pack": pack, "summary": pack.summary})


@role_required(*EXPORT_ROLES)
def evidence_download(request: HttpRequest, week: str) -> HttpResponse:
    monday = week_from(week)
    if monday.isoformat() != week:
        return redirect("evidence_download", week=monday.isoformat())
    pack = pack_for(request, monday)
    body = bundle_zip(pack)
    audited(request, pack, "zip")
    response = HttpResponse(body, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{bundle_name(pack)}"'
    # Masked or not, it is evidence about people's work: no shared cache keeps a copy.
    response["Cache-Control"] = "private, no-store"
    return response


def week_from(text: str) -> date:
    """The Monday of the week the URL names (any day of it); 404 for a date that is not one."""
    try:
        return monday_of(date.fromisoformat(text))
    except ValueError:
        raise Http404("No such date.") from None


def pack_for(request: HttpRequest, monday: date) -> EvidencePack:
    user = request.user
    return evidence_pack(
        monday,
        show_personal_data=sees_personal_data(user),
        generated_by=user.get_full_name() or user.get_username(),
    )


def audited(request: HttpRequest, pack: EvidencePack, fmt: str) -> None:
    week = pack.week_start.isoformat()
    record_export(
        actor=request.user,
        kind=EXPORT_KIND,
        format=fmt,
        filters={"week": week, "time_zone": pack.time_zone},
        rows=pack.rows,
        week=week,
        personal_data="shown" if pack.personal_data_shown else "masked",
    )
