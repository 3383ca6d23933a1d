from collections import defaultdict

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from notifwatch.accounts.actions import AccountError, check_grant, known_zones
from notifwatch.accounts.models import Role, Team

ROLE_HELP = {
    Role.ADMIN: "Everything: sources, users and roles.",
    Role.REVIEWER: "Triage, assign, resolve, run weekly reviews; sees personal data.",
    Role.VIEWER: "Reads everything; recipients are masked.",
    Role.AUDITOR: "Reads and exports; recipients masked unless granted below.",
}
GRANT_LABEL = "Auditor may see personal data (recipients unmasked)"


class PasswordFields(forms.Form):
    """A new password typed twice, or nothing to have one generated."""

    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave both empty to generate a strong password, shown to you once.",
    )
    password2 = forms.CharField(
        label="Password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_passwords(self, user) -> None:
        first = self.cleaned_data.get("password1") or ""
        second = self.cleaned_data.get("password2") or ""
        if not first and not second:
            return
        if first != second:
            self.add_error("password2", "The two passwords differ.")
            return
        try:
            password_validation.validate_password(first, user)
        except ValidationError as exc:
            self.add_error("password1", exc)

    @property
    def password(self) -> str | None:
        return self.cleaned_data.get("password1") or None


def role_field() -> forms.ChoiceField:
    choices = [(value, f"{label} — {ROLE_HELP[value]}") for value, label in Role.choices]
    return forms.ChoiceField(choices=choices, widget=forms.RadioSelect)


def teams_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Team.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Exceptions are owned by teams: pick the ones this person works in.",
    )


class NewUserForm(PasswordFields):
    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    email = forms.EmailField(required=False)
    role = role_field()
    personal_data_granted = forms.BooleanField(required=False, label=GRANT_LABEL)
    teams = teams_field()

    field_order = [
        "username",
        "email",
        "role",
        "personal_data_granted",
        "teams",
        "password1",
        "password2",
    ]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        # Case-insensitive, as Django's own UserCreationForm: "Rita" and "rita" would be confusing.
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise ValidationError("A user with that username already exists.")
        return username

    def clean(self) -> dict:
        cleaned = super().clean()
        add_grant_error(self, cleaned)
        user = get_user_model()(
            username=cleaned.get("username", ""), email=cleaned.get("email", "")
        )
        self.clean_passwords(user)
        return cleaned


class EditUserForm(forms.Form):
    role = role_field()
    personal_data_granted = forms.BooleanField(required=False, label=GRANT_LABEL)
    teams = teams_field()
    is_active = forms.BooleanField(
        required=False,
        label="Active: can log in",
        help_text="Untick to deactivate. The user's history stays; tick again to let them back in.",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        add_grant_error(self, cleaned)
        return cleaned


class SetPasswordForm(PasswordFields):
    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self) -> dict:
        cleaned = super().clean()
        self.clean_passwords(self.user)
        return cleaned


def add_grant_error(form: forms.Form, cleaned: dict) -> None:
    try:
        check_grant(cleaned.get("role", ""), cleaned.get("personal_data_granted", False))
    except AccountError as exc:
        form.add_error("personal_data_granted", exc.message)


def zone_choices() -> list:
    """The server default first, then every zone grouped by region ("Europe", "America", ...)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for zone in sorted(known_zones()):
        region, slash, place = zone.partition("/")
        if slash:
            groups[region].append((zone, zone))
        else:
            groups["Other"].append((zone, zone))
    regions = sorted(set(groups) - {"Other"}) + ["Other"]
    default = ("", f"Server default ({settings.TIME_ZONE})")
    return [default, *((region, groups[region]) for region in regions if groups[region])]


class PreferencesForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        choices=zone_choices,
        help_text="Every date and time in notifwatch is shown in this zone.",
    )
