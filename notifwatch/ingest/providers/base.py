"""What every provider adapter is made of, and the registry each adapter module adds itself to.

An adapter has two halves, because authentication can only happen while the request is live,
but interpretation must be repeatable from the stored raw event (reprocessing after a fix):

- `authenticate(source, request)` raises `Rejected` for a bad signature or secret;
- `parse(source, raw)` reads only the stored bytes and headers and returns `Parsed`.

Adapter modules (email.py, twilio.py) import this module and `register` their adapters; the
package (`adapter_for`) imports them. Nothing here imports them back, so the way stays one-way.
"""

from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from notifwatch.ingest.models import RawEvent, Source

# Request headers never stored with a raw event.
SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization"}


class Rejected(Exception):
    """The call is not from who it claims to be: counted, stored as rejected, never trusted."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class ProviderRecord:
    """One delivery outcome for one recipient, in canonical field names (ingest/canonical.py)."""

    values: dict[str, Any]
    # The provider's own event, kept beside the normalised one (normalising loses detail).
    raw: Any = None


@dataclass
class Parsed:
    records: list[ProviderRecord] = field(default_factory=list)
    # Recognised calls or items that are not delivery outcomes ("SNS subscription confirmed").
    ignored: list[str] = field(default_factory=list)
    # Items that could not be read: [{"index": i, "field": f or None, "message": m}].
    problems: list[dict] = field(default_factory=list)


@dataclass
class SetupHelp:
    """What an admin pastes into the provider's dashboard."""

    events: str
    secret: str
    notes: str = ""


class Adapter(Protocol):
    kind: str
    setup: SetupHelp

    def authenticate(self, source: Source, request: HttpRequest) -> None: ...

    def parse(self, source: Source, raw: RawEvent) -> Parsed: ...

    # Optional: an immediate answer the provider expects (e.g. an SNS handshake). None = 200.
    def reply(self, source: Source, raw: RawEvent) -> HttpResponse | None: ...


ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    ADAPTERS[adapter.kind] = adapter
    return adapter


def stored_headers(request: HttpRequest) -> dict[str, str]:
    return {
        name: value for name, value in request.headers.items() if name.lower() not in SECRET_HEADERS
    }


def request_from_raw(raw: RawEvent) -> HttpRequest:
    """Rebuild the request a provider sent from what was stored, for parsers that want one."""
    request = HttpRequest()
    request.method = "POST"
    body = bytes(raw.body)
    request._stream = BytesIO(body)  # type: ignore[attr-defined]
    request._read_started = False  # type: ignore[attr-defined]
    request.META["CONTENT_TYPE"] = raw.content_type or raw.headers.get("Content-Type", "")
    request.META["CONTENT_LENGTH"] = str(len(body))
    request.META["SERVER_NAME"] = "notifwatch"
    request.META["SERVER_PORT"] = "443"
    for name, value in (raw.headers or {}).items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            request.META[f"HTTP_{key}"] = value
    # HttpRequest only parses content_type in WSGIRequest.__init__; POST parsing needs it.
    request._set_content_type_params(request.META)  # type: ignore[attr-defined]
    return request


def public_webhook_url(source: Source) -> str:
    """The URL as the provider calls it (behind a TLS proxy the request URL may differ)."""
    return settings.NOTIFWATCH_BASE_URL + reverse("source_webhook", args=[source.slug])
