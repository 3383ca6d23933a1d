"""The subscription form: what to hear about, by which channel, when."""

import calendar

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from notifwatch.alerts.models import AlertKind, Channel, Scope, Timing
from notifwatch.ingest.standard_webhooks import is_standard_secret, signing_key

WEEKDAYS = [(number, name) for number, name in enumerate(calendar.day_name)]
HOURS = [(hour, f"{hour:02d}:00") for hour in range(24)]
http_url = URLValidator(schemes=["http", "https"])


class SubscriptionForm(forms.Form):
    kind = forms.ChoiceField(label="Tell me when", choices=AlertKind.choices)
    channel = forms.ChoiceField(label="By", choices=Channel.choices, widget=forms.RadioSelect)
    target = forms.CharField(
        label="Address or URL",
        required=False,
        max_length=500,
        help_text=(
            "Email: an address (blank: your own). Chat webhook: the incoming-webhook URL of the "
            "room (Slack, Mattermost, Rocket.Chat, a Teams workflow). Outgoing webhook: the URL "
            "notifwatch posts signed JSON to."
        ),
    )
    secret = forms.CharField(
        label="Signing secret (outgoing webhook)",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=(
            "A Standard Webhooks secret, whsec_ followed by base64. Leave blank to keep the one "
            "set, or to have one generated and shown to you once."
        ),
    )
    timing = forms.ChoiceField(
        label="When",
        choices=Timing.choices,
        initial=Timing.IMMEDIATE,
        widget=forms.RadioSelect,
        help_text="A daily digest gathers the day's alerts into one message at the digest hour.",
    )
    scope = forms.ChoiceField(
        label="Whose exceptions",
        choices=Scope.choices,
        initial=Scope.MINE,
        widget=forms.RadioSelect,
    )
    digest_weekday = forms.TypedChoiceField(
        label="Weekly digest on", choices=WEEKDAYS, coerce=int, initial=0
    )
    digest_hour = forms.TypedChoiceField(
        label="Digest hour",
        choices=HOURS,
        coerce=int,
        initial=8,
        help_text="In your time zone (Preferences); the daily digest goes at this hour too.",
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)

    def __init__(self, *args, for_team: bool = False, may_post_urls: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.for_team = for_team
        self.may_post_urls = may_post_urls
        if for_team:
            # A team hears about the exceptions it owns.
            del self.fields["scope"]
            self.fields["target"].help_text = self.fields["target"].help_text.replace(
                "(blank: your own)", "(the team's shared mailbox)"
            )
            self.fields["digest_hour"].help_text = "In the server's time zone."

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret:
            return ""
        try:
            if not is_standard_secret(secret):
                raise ValueError
            signing_key(secret)
        except ValueError:
            raise ValidationError("A signing secret is whsec_ followed by base64.") from None
        return secret

    def clean(self) -> dict:
        cleaned = super().clean()
        channel, target = cleaned.get("channel"), cleaned.get("target", "")
        if channel == Channel.EMAIL:
            if not target and self.for_team:
                self.add_error("target", "A team's email alerts need an address.")
            elif target:
                try:
                    validate_email(target)
                except ValidationError:
                    self.add_error("target", "Enter an email address, or leave it blank.")
        elif channel in (Channel.CHAT, Channel.WEBHOOK) and not self.may_post_urls:
            # The server posts to that URL from inside the network: only admins choose where.
            self.add_error(
                "channel",
                "Only an admin can send alerts to a chat room or webhook URL; choose email, "
                "or ask an admin to set up your team's chat room.",
            )
        elif channel in (Channel.CHAT, Channel.WEBHOOK):
            try:
                http_url(target)
            except ValidationError:
                self.add_error("target", "Enter the http:// or https:// URL to post to.")
        if channel != Channel.WEBHOOK:
            cleaned["secret"] = ""
        if self.for_team:
            cleaned["scope"] = Scope.MINE
        return cleaned
