import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from notifwatch.ingest.actions import save_source
from notifwatch.ingest.mapping import MappingError
from notifwatch.ingest.models import SourceKind
from notifwatch.ingest.presets import load_preset, preset_names


class Command(BaseCommand):
    help = "Create or update a source and print its endpoint URL."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--kind", required=True, choices=SourceKind.values)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--secret",
            help="user:password (basic-auth providers), signing key (Mailgun), auth token "
            "(Twilio) or bearer token (json; generated and printed once when omitted).",
        )
        parser.add_argument(
            "--mapping",
            help=f"a field-mapping JSON file, or a preset name ({', '.join(preset_names())}).",
        )

    def handle(self, slug, kind, name, secret, mapping, **options):
        document = load_mapping(mapping) if mapping else None
        try:
            saved = save_source(
                slug=slug,
                kind=kind,
                name=name,
                secret=secret,
                mapping=document,
                actor_label="manage.py add_source",
            )
        except (ValueError, MappingError) as exc:
            raise CommandError(str(exc)) from exc
        source = saved.source
        verb = "Created" if saved.created else "Updated"
        self.stdout.write(f"{verb} source {source.slug} ({source.get_kind_display()}).")
        base = settings.NOTIFWATCH_BASE_URL
        self.stdout.write(f"Webhook URL: {base}{reverse('source_webhook', args=[source.slug])}")
        if kind == SourceKind.JSON:
            self.stdout.write(f"API URL:     {base}{reverse('api_events')}")
        if saved.new_token:
            self.stdout.write(f"Token (shown once, keep it safe): {saved.new_token}")
        elif source.credential_hint:
            self.stdout.write(f"Secret: {source.credential_hint}")


def load_mapping(value: str) -> dict:
    if value in preset_names() and not Path(value).exists():
        return load_preset(value)
    try:
        return json.loads(Path(value).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise CommandError(
            f"no mapping file {value!r} (presets: {', '.join(preset_names())})"
        ) from exc
    except json.JSONDecodeError as exc:
        raise CommandError(f"{value}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
