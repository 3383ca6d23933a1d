from datetime import date, datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.failures.models import FailureGroup, Status
from notifwatch.lib.filtering import QuickSelect

# What the queue shows by default, and the other sets a reviewer asks for by name.
STATUS_FILTERS = [
    ("open", "Open (new, assigned, regressed)"),
    (Status.NEW, "New"),
    (Status.ASSIGNED, "Assigned"),
    (Status.REGRESSED, "Regressed"),
    (Status.SNOOZED, "Snoozed"),
    (Status.RESOLVED, "Resolved"),
    (Status.ACCEPTED, "Accepted (expected)"),
    ("all", "All, merged ones too"),
]
# The statuses a person sets by hand; snoozing has its own form, the others are set by the system.
STATUS_CHOICES = [
    (Status.RESOLVED, "Resolved — fixed"),
    (Status.ACCEPTED, "Accepted — expected, no action"),
    (Status.NEW, "New — reopen it"),
]


class TeamChoiceField(forms.ModelChoiceField):
    default_error_messages = {"invalid_choice": "Unknown team: pick one from the list."}


class PersonChoiceField(forms.ModelChoiceField):
    default_error_messages = {"invalid_choice": "Unknown person: pick one from the list."}

    def label_from_instance(self, user) -> str:
        return user.get_full_name() or user.get_username()


def people():
    """Everyone who can be given an exception: active users with a role."""
    return (
        get_user_model()
        .objects.filter(is_active=True, membership__isnull=False)
        .order_by("username")
    )


class AssignForm(forms.Form):
    team = TeamChoiceField(queryset=Team.objects.all(), required=False, empty_label="(keep)")
    assignee = PersonChoiceField(
        queryset=people(), required=False, empty_label="(keep)", label="Person"
    )

    def clean(self):
        data = super().clean()
        if not self.errors and not (data.get("team") or data.get("assignee")):
            raise forms.ValidationError("Choose a team, a person, or both.")
        return data


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=STATUS_CHOICES)
    comment = forms.CharField(required=False, max_length=2000, label="Why (optional)")


class SnoozeForm(forms.Form):
    until = forms.DateField(
        label="Snooze until", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    wake_at_occurrences = forms.IntegerField(
        required=False,
        min_value=1,
        label="…or wake when it reaches",
        help_text="occurrences (optional)",
    )
    comment = forms.CharField(required=False, max_length=2000, label="Why (optional)")

    def __init__(self, *args, group: FailureGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def clean_until(self) -> date:
        until = self.cleaned_data["until"]
        if until <= timezone.localdate():
            raise forms.ValidationError("Pick a date after today.")
        return until

    def clean_wake_at_occurrences(self) -> int | None:
        wake_at = self.cleaned_data["wake_at_occurrences"]
        if wake_at is not None and wake_at <= self.group.occurrences:
            raise forms.ValidationError(
                f"It already has {self.group.occurrences}: pick a number above that."
            )
        return wake_at

    def until_datetime(self) -> datetime:
        """The start of the chosen day in the user's time zone: it wakes that morning."""
        return timezone.make_aware(datetime.combine(self.cleaned_data["until"], time.min))


class NoteForm(forms.Form):
    text = forms.CharField(max_length=5000, label="Note", widget=forms.Textarea(attrs={"rows": 3}))


# --- Bulk actions on the queue --------------------------------------------------------------

BULK_VERBS = [
    ("assign", "Assign to a team and/or person"),
    ("resolve", "Resolve — fixed"),
    ("accept", "Accept — expected, no action"),
    ("snooze", "Snooze until a date"),
]
BULK_SCOPES = [
    ("selected", "The ticked exceptions"),
    ("all", "Every exception matching the filters"),
]


class IdListField(forms.Field):
    """Exception ids posted as repeated `ids` values (the ticked rows)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "Pick exceptions from the list."}

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        try:
            return sorted({int(item) for item in value})
        except (TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class BulkForm(forms.Form):
    """One change for many exceptions: what to do, and to which (ticked ones or the filter)."""

    verb = forms.ChoiceField(choices=BULK_VERBS, label="Change", widget=QuickSelect)
    team = TeamChoiceField(
        queryset=Team.objects.all(), required=False, empty_label="(keep)", widget=QuickSelect
    )
    assignee = PersonChoiceField(
        queryset=people(), required=False, empty_label="(keep)", label="Person", widget=QuickSelect
    )
    until = forms.DateField(
        required=False,
        label="Snooze until",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    comment = forms.CharField(required=False, max_length=2000, label="Why (optional)")
    scope = forms.ChoiceField(choices=BULK_SCOPES)
    # The queue's filters as a query string; re-run at each step, never trusted as a list of ids.
    filters = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)
    ids = IdListField(required=False)
    # What the confirmation showed: applying refuses if the matching set changed since.
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    digest = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        verb = data.get("verb")
        if verb == "assign" and not (data.get("team") or data.get("assignee")):
            if not (self.has_error("team") or self.has_error("assignee")):
                self.add_error(None, "Choose a team, a person, or both.")
        if verb == "snooze" and not self.has_error("until"):
            until = data.get("until")
            if until is None:
                self.add_error("until", "Pick the date it should come back.")
            elif until <= timezone.localdate():
                self.add_error("until", "Pick a date after today.")
        if data.get("scope") == "selected" and not data.get("ids") and not self.has_error("ids"):
            self.add_error(
                None, "Tick at least one exception, or apply the change to every matching one."
            )
        return data

    def until_datetime(self) -> datetime | None:
        """The start of the chosen day in the user's time zone: they wake that morning."""
        until = self.cleaned_data.get("until")
        return timezone.make_aware(datetime.combine(until, time.min)) if until else None
