"""The search page's filters: source, channel, final status and a date range, kept in the URL.

With a search they narrow its matches; alone they list notifications (newest activity first).
The same filters drive the page's export, so it holds exactly what the page lists.

Dates are days in the user's time zone (their preference, else the server's TIME_ZONE), like the
queue's date range, and apply to a notification's last activity (``last_event_at``), half-open:
``from`` keeps what last happened at or after the midnight that starts that day, ``to`` what
last happened before the midnight that ends it (the start of the next day). Both days are
included, ``from=to`` is that one day, and adjacent ranges (…–13th, 14th–…) never share a
notification.
"""

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from notifwatch.deliveries.models import Channel, FinalStatus, Notification
from notifwatch.ingest.models import Source
from notifwatch.lib.filtering import QuickSelect, start_of_day

DATE_WIDGET = {"attrs": {"type": "date"}, "format": "%Y-%m-%d"}


class SourceChoiceField(forms.ModelChoiceField):
    default_error_messages = {"invalid_choice": "Unknown source: pick one from the list."}


class SourceFilter(django_filters.ModelChoiceFilter):
    field_class = SourceChoiceField


class NotificationFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start and end and end < start:
            self.add_error("to", "Must be on or after the “from” day.")
        return data


class NotificationFilter(django_filters.FilterSet):
    """Source (by slug), channel, final status, and `from` / `to` days (added below the class:
    `from` is a Python keyword, and the URL reads best with plain words)."""

    source = SourceFilter(
        queryset=Source.objects.all(),
        to_field_name="slug",
        empty_label="Any source",
        widget=QuickSelect,
    )
    channel = django_filters.ChoiceFilter(
        choices=Channel.choices, empty_label="Any channel", widget=QuickSelect
    )
    status = django_filters.ChoiceFilter(
        field_name="final_status",
        choices=FinalStatus.choices,
        empty_label="Any status",
        label="Final status",
        widget=QuickSelect,
    )

    class Meta:
        model = Notification
        fields: list[str] = []
        form = NotificationFilterForm

    def filter_from(self, notifications: QuerySet, name: str, value) -> QuerySet:
        # Bounds on the column itself, so the (last_event_at, id) index serves the range.
        return notifications.filter(last_event_at__gte=start_of_day(value))

    def filter_to(self, notifications: QuerySet, name: str, value) -> QuerySet:
        return notifications.filter(last_event_at__lt=start_of_day(value + timedelta(days=1)))

    def is_filtered(self) -> bool:
        """Whether any filter was given (valid or not): with one, the page lists or explains."""
        return any(self.data.get(name, "").strip() for name in self.filters)

    def querystring(self) -> str:
        """The given filters as a query string, in a stable order (for links and exports)."""
        return filter_querystring(self.data)

    def audit_record(self) -> dict:
        """The filters as the audit trail records them: only those given, dates with the zone
        they were read in. Call after `is_valid()`."""
        data = self.form.cleaned_data
        record: dict = {}
        for name in self.filters:
            value = data.get(name)
            if value in (None, ""):
                continue
            record[name] = value.slug if isinstance(value, Source) else str(value)
        if data.get("from") or data.get("to"):
            record["time_zone"] = timezone.get_current_timezone_name()
        return record


NotificationFilter.base_filters["from"] = django_filters.DateFilter(
    field_name="last_event_at",
    method="filter_from",
    label="From (day)",
    widget=forms.DateInput(**DATE_WIDGET),
)
NotificationFilter.base_filters["to"] = django_filters.DateFilter(
    field_name="last_event_at",
    method="filter_to",
    label="To (day, included)",
    widget=forms.DateInput(**DATE_WIDGET),
)


def filter_querystring(data) -> str:
    """Only the filter parameters that have a value, in the filters' order: no q, no cursor."""
    kept = QueryDict(mutable=True)
    for name in NotificationFilter.base_filters:
        values = [value.strip() for value in data.getlist(name) if value.strip()]
        if values:
            kept.setlist(name, values[-1:])
    return kept.urlencode()
