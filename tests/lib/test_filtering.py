from datetime import date

from django import forms
from django.utils import timezone

from notifwatch.lib.filtering import QuickSelect, start_of_day


class Pick(forms.Form):
    channel = forms.ChoiceField(
        choices=[("", "Any channel"), ("email", "Email"), ("sms", "<b>SMS</b>")],
        widget=QuickSelect,
        required=False,
    )


def test_it_renders_the_options_with_the_chosen_one_selected_and_labels_escaped():
    html = str(Pick(data={"channel": "email"})["channel"])

    assert html == (
        '<select name="channel" id="id_channel">'
        '<option value="">Any channel</option>'
        '<option value="email" selected>Email</option>'
        '<option value="sms">&lt;b&gt;SMS&lt;/b&gt;</option>'
        "</select>"
    )


def test_a_day_starts_at_midnight_in_the_users_time_zone():
    with timezone.override("Europe/Berlin"):
        start = start_of_day(date(2025, 3, 14))

    assert start.isoformat() == "2025-03-14T00:00:00+01:00"
