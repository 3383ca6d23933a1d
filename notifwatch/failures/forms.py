from datetime import date, datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.failures.models import FailureGroup, Kind, Status

# What the list shows by default, and the other sets a reviewer asks for by name.
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


class ExceptionFilterForm(forms.Form):
    """The list's filters, read from the query string; an invalid value is shown, not applied."""

    kind = forms.ChoiceField(choices=[("", "Any kind"), *Kind.choices], required=False)
    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False)
    team = TeamChoiceField(queryset=Team.objects.all(), required=False, empty_label="Any team")
    unowned = forms.BooleanField(required=False, label="Unowned only")

    def apply(self, groups):
        data = self.cleaned_data
        status = data.get("status") or "open"
        if status == "open":
            groups = groups.open_for_review()
        elif status != "all":
            groups = groups.filter(status=status, merged_into__isnull=True)
        if data.get("kind"):
            groups = groups.filter(kind=data["kind"])
        if data.get("team"):
            groups = groups.filter(team=data["team"])
        if data.get("unowned"):
            groups = groups.filter(team__isnull=True, assignee__isnull=True)
        return groups


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
