from urllib.parse import urlencode

import django_filters
from django.db.models import Q
from django.urls import reverse

from notifwatch.audit.models import AuditEntry


class AuditFilter(django_filters.FilterSet):
    """The audit page's filters; the export link carries the same query string."""

    actor = django_filters.CharFilter(method="filter_actor", label="Actor")
    action = django_filters.CharFilter(
        field_name="action", lookup_expr="startswith", label="Action"
    )
    target_type = django_filters.CharFilter(field_name="target_type", label="Target type")
    target_id = django_filters.CharFilter(field_name="target_id", label="Target id")
    since = django_filters.DateFilter(field_name="at", lookup_expr="date__gte", label="From")
    until = django_filters.DateFilter(field_name="at", lookup_expr="date__lte", label="To")

    class Meta:
        model = AuditEntry
        fields: list[str] = []

    def filter_actor(self, queryset, name, value):
        return queryset.filter(Q(actor__username=value) | Q(actor_label__icontains=value))


def trail_url(target) -> str:
    """The audit page filtered to one object: the entries `record_audit` wrote about it."""
    query = urlencode({"target_type": target._meta.label_lower, "target_id": target.pk})
    return f"{reverse('audit_list')}?{query}"
