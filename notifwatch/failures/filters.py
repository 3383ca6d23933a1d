"""The review queue's filters and its impact order, shared by the queue page and bulk actions.

The filters live in the URL (GET), so a bulk action can re-run exactly the filter the reviewer
was looking at from the query string it posts back.
"""

from datetime import timedelta

import django_filters
from django import forms
from django.db import connection
from django.db.models import F, Lookup, QuerySet
from django.http import QueryDict

from notifwatch.accounts.models import Team
from notifwatch.deliveries.models import Channel
from notifwatch.failures.forms import STATUS_FILTERS, PersonChoiceField, people
from notifwatch.failures.models import FailureGroup, Kind
from notifwatch.failures.reasons import CATEGORIES
from notifwatch.ingest.models import Source
from notifwatch.lib.filtering import QuickSelect, start_of_day
from notifwatch.lib.paging import numbers_cursor, parse_numbers_cursor, rows_below

# Impact first: customers nobody reached, then growth (occurrences in the last 7 days), then how
# often it happened in all; the id keeps pages stable.
IMPACT_KEYS = ("customers_not_reached", "recent_occurrences", "occurrences", "id")
IMPACT_ORDER = tuple(f"-{key}" for key in IMPACT_KEYS)
UNOWNED = "unowned"
FIX_OWNER_CHOICES = [
    ("our_setup", "Our setup"),
    ("recipient_data", "Recipient data (CRM, billing, support)"),
    ("recipient_choice", "Recipient's choice"),
    ("provider", "Provider"),
    ("unknown", "Unknown"),
]
# Query-string names the first exception list used; links written against it keep working.
LEGACY_OWNER_PARAMS = ("team", "unowned")


def category_label(value: str) -> str:
    return value.replace("_", " ").capitalize()


def owner_choices() -> list[tuple[str, str]]:
    teams = [(str(pk), name) for pk, name in Team.objects.values_list("pk", "name")]
    return [(UNOWNED, "Unowned (no team, no person)"), *teams]


class PersonFilter(django_filters.ModelChoiceFilter):
    field_class = PersonChoiceField


class QueueFilter(django_filters.FilterSet):
    """Which exceptions the queue shows: open ones unless the status filter says otherwise."""

    q = django_filters.CharFilter(
        method="filter_text",
        label="Text",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Words in the title"}),
    )
    source = django_filters.ModelChoiceFilter(
        queryset=Source.objects.all(), empty_label="Any source", widget=QuickSelect
    )
    channel = django_filters.ChoiceFilter(
        choices=Channel.choices, empty_label="Any channel", widget=QuickSelect
    )
    kind = django_filters.ChoiceFilter(
        choices=Kind.choices, empty_label="Any kind", widget=QuickSelect
    )
    category = django_filters.ChoiceFilter(
        field_name="reason_category",
        choices=[(c, category_label(c)) for c in CATEGORIES],
        empty_label="Any category",
        widget=QuickSelect,
    )
    fix_owner = django_filters.ChoiceFilter(
        choices=FIX_OWNER_CHOICES, empty_label="Anyone", label="Who can fix", widget=QuickSelect
    )
    status = django_filters.ChoiceFilter(
        choices=STATUS_FILTERS, empty_label=None, method="filter_status", widget=QuickSelect
    )
    owner = django_filters.ChoiceFilter(
        choices=owner_choices,
        empty_label="Any team",
        method="filter_owner",
        label="Owner (team)",
        widget=QuickSelect,
    )
    assignee = PersonFilter(
        queryset=lambda request: people(), empty_label="Anyone", label="Person", widget=QuickSelect
    )
    seen_from = django_filters.DateFilter(
        method="filter_seen_from",
        label="Last seen from",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    seen_to = django_filters.DateFilter(
        method="filter_seen_to",
        label="Last seen to",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    class Meta:
        model = FailureGroup
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            data = with_defaults(data)
        super().__init__(data, *args, **kwargs)

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        groups = super().filter_queryset(queryset)
        if "status" not in self.form.cleaned_data:
            # An unreadable status shows the open queue, never every exception.
            groups = groups.open_for_review()
        return groups

    def filter_text(self, groups: QuerySet, name: str, value: str) -> QuerySet:
        if connection.vendor != "postgresql":
            return groups.filter(title__icontains=value)
        return groups.filter(ILike(F("title"), f"%{connection.ops.prep_for_like_query(value)}%"))

    def filter_status(self, groups: QuerySet, name: str, value: str) -> QuerySet:
        if value == "all":
            return groups
        if value == "open":
            return groups.open_for_review()
        return groups.filter(status=value, merged_into__isnull=True)

    def filter_owner(self, groups: QuerySet, name: str, value: str) -> QuerySet:
        if value == UNOWNED:
            return groups.filter(team__isnull=True, assignee__isnull=True)
        return groups.filter(team_id=value)

    def filter_seen_from(self, groups: QuerySet, name: str, value) -> QuerySet:
        # Bounds on the column itself (not `last_seen__date`), so an index on it stays usable.
        return groups.filter(last_seen__gte=start_of_day(value))

    def filter_seen_to(self, groups: QuerySet, name: str, value) -> QuerySet:
        return groups.filter(last_seen__lt=start_of_day(value + timedelta(days=1)))

    def is_default(self) -> bool:
        """Whether it shows what the queue shows with no filter: every open exception."""
        if not self.is_valid():
            return False
        data = self.form.cleaned_data
        rest = [value for name, value in data.items() if name != "status"]
        return data.get("status") == "open" and all(value in (None, "") for value in rest)

    def querystring(self) -> str:
        """The filters as a query string (no paging): what a bulk action re-runs."""
        return filter_querystring(self.data)


def with_defaults(data) -> QueryDict:
    """The request's filters with the default status (open) and the old parameter names."""
    copy = QueryDict(mutable=True)
    for name, values in data.lists() if isinstance(data, QueryDict) else data.items():
        copy.setlist(name, values if isinstance(values, list) else [values])
    if not copy.get("status"):
        copy["status"] = "open"
    if not copy.get("owner"):
        if copy.get("unowned") not in (None, "", "0", "off", "false"):
            copy["owner"] = UNOWNED
        elif copy.get("team"):
            copy["owner"] = copy["team"]
    for name in LEGACY_OWNER_PARAMS:
        copy.pop(name, None)
    return copy


def filter_querystring(data) -> str:
    """Only the filter parameters, in a stable order: no cursor, no unknown keys."""
    data = with_defaults(data)
    kept = QueryDict(mutable=True)
    for name in QueueFilter.base_filters:
        values = [value for value in data.getlist(name) if value != ""]
        if values:
            kept.setlist(name, values)
    return kept.urlencode()


class ILike(Lookup):
    """`title ILIKE '%text%'` on PostgreSQL, rather than icontains' `UPPER(title) LIKE UPPER(..)`.

    The planner guesses ILIKE's matches sensibly (3,546 of 50k against 4 for the UPPER form), so
    it walks the impact-order index and stops after a page instead of scanning and sorting every
    exception (3 ms against 31 ms at 50k).
    """

    lookup_name = "ilike"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)


# --- Keyset paging in impact order --------------------------------------------------------


def page_after(groups: QuerySet, cursor: tuple[int, ...] | None) -> QuerySet:
    """The rows after the cursor in impact order: no OFFSET, so page 300 costs what page 1 does."""
    groups = groups.order_by(*IMPACT_ORDER)
    return groups if cursor is None else rows_below(groups, IMPACT_KEYS, cursor)


def make_cursor(group: FailureGroup, position: int) -> str:
    return numbers_cursor([getattr(group, key) for key in IMPACT_KEYS], position)


def parse_cursor(value: str) -> tuple[tuple[int, ...], int] | None:
    return parse_numbers_cursor(value, len(IMPACT_KEYS))
