"""Provider adapters: each turns one provider's webhook calls into canonical records.

The pieces an adapter is made of live in `base`; this package finds an adapter by source kind,
importing the adapter modules (which register themselves) on first use. Register a new adapter
module in `load_adapters`.
"""

from notifwatch.ingest.providers.base import (
    ADAPTERS,
    Adapter,
    Parsed,
    ProviderRecord,
    Rejected,
    SetupHelp,
    public_webhook_url,
    register,
    request_from_raw,
    stored_headers,
)

__all__ = [
    "Adapter",
    "Parsed",
    "ProviderRecord",
    "Rejected",
    "SetupHelp",
    "adapter_for",
    "load_adapters",
    "public_webhook_url",
    "register",
    "request_from_raw",
    "stored_headers",
]


def adapter_for(kind: str) -> Adapter | None:
    load_adapters()
    return ADAPTERS.get(kind)


_loaded = False


def load_adapters() -> None:
    """Import the adapter modules once (they register themselves)."""
    global _loaded
    if _loaded:
        return
    from notifwatch.ingest.providers import email, twilio  # noqa: F401

    _loaded = True
