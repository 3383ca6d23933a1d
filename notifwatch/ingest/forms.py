import json

from django import forms

from notifwatch.ingest.mapping import MappingError, validate_mapping


class MappingForm(forms.Form):
    """A source's field mapping as JSON text; empty means its records are canonical already."""

    mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text="JSON. Leave empty when the source already sends canonical events.",
    )

    def clean_mapping(self) -> dict | None:
        text = self.cleaned_data["mapping"].strip()
        if not text:
            return None
        try:
            document = json.loads(text)
        except ValueError as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
            message = getattr(exc, "msg", str(exc))
            raise forms.ValidationError(f"This is not valid JSON: {message}{where}.") from exc
        try:
            return validate_mapping(document)
        except MappingError as exc:
            raise forms.ValidationError(str(exc)) from exc


def mapping_text(mapping: dict | None) -> str:
    return json.dumps(mapping, indent=2, ensure_ascii=False) if mapping is not None else ""
