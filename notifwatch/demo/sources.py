"""The demo's eight sources, created through the same action as `manage.py add_source`."""

from __future__ import annotations

from dataclasses import dataclass

from notifwatch.demo.twilio import TWILIO_TOKEN
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.models import Source
from notifwatch.ingest.presets import load_preset


@dataclass(frozen=True)
class SourceSpec:
    slug: str
    kind: str
    name: str
    preset: str | None = None
    secret: str | None = None  # demo-only webhook secrets; json/csv tokens are generated


SOURCES = (
    SourceSpec("shop-sender", "json", "Shop sender (in-house log)", preset="inhouse_log"),
    SourceSpec("push-sender", "json", "Push sender (FCM / APNs)", preset="push_sender"),
    SourceSpec("billing-api", "json", "Billing API"),
    SourceSpec("support-desk", "json", "Support desk"),
    SourceSpec("crm-csv", "csv", "CRM reminders (daily CSV)"),
    SourceSpec("sendgrid", "sendgrid", "SendGrid", secret="notifwatch:demo-sendgrid-hook"),
    SourceSpec("postmark", "postmark", "Postmark", secret="notifwatch:demo-postmark-hook"),
    SourceSpec("twilio", "twilio", "Twilio", secret=TWILIO_TOKEN),
)
DEMO_SLUGS = tuple(spec.slug for spec in SOURCES)


def ensure_sources() -> dict[str, Source]:
    """Create missing demo sources through save_source; existing ones are left as they are."""
    sources = {}
    for spec in SOURCES:
        source = Source.objects.filter(slug=spec.slug).first()
        if source is None:
            mapping = load_preset(spec.preset) if spec.preset else None
            source = save_source(
                slug=spec.slug,
                kind=spec.kind,
                name=spec.name,
                secret=spec.secret,
                mapping=mapping,
                actor_label="manage.py seed_demo",
            ).source
        sources[spec.slug] = source
    return sources
