from django import forms


class NewTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="What it is for",
        help_text="The script or tool that will use it, e.g. “support desk lookup”.",
    )


class RevokeForm(forms.Form):
    token = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
