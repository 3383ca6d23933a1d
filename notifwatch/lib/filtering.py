"""What the list pages' filters share: a fast <select>, and where a chosen day starts."""

from datetime import datetime, time

from django import forms
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe


class QuickSelect(forms.Select):
    """A <select> rendered in Python rather than a template per <option>.

    The queue page shows about a hundred options (its filters and the bulk bar); through
    Django's widget templates they were a third of the page's render time.
    """

    def render(self, name, value, attrs=None, renderer=None) -> str:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (
                    option["value"],
                    mark_safe(" selected") if option["selected"] else "",
                    option["label"],
                )
                for _, group, _ in widget["optgroups"]
                for option in group
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
        )


def start_of_day(day) -> datetime:
    """Midnight at the start of `day` in the user's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))
