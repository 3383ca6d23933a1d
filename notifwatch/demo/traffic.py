"""What a source sent, as bytes: imported log files and HTTP calls, and when each arrived."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from notifwatch.demo.world import World
from notifwatch.ingest.models import Transport


@dataclass
class LogFile:
    """One imported file: items as `import_lines` takes them, and when each line arrived."""

    slug: str
    name: str
    lines: list[tuple[int, bytes | None, str | None]]
    arrivals: dict[int, datetime]
    default_arrival: datetime | None = None


@dataclass
class Call:
    """One HTTP call as stored; `rejected` says why authentication refused it."""

    slug: str
    arrived: datetime
    body: bytes
    transport: str = Transport.WEBHOOK
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    rejected: str = ""


@dataclass
class Callback:
    """One provider callback record and when it reached us."""

    arrival: datetime
    record: dict


def shipped_at(ts: datetime) -> datetime:
    """Log lines are shipped every 5 minutes."""
    epoch = ts.timestamp()
    return datetime.fromtimestamp((epoch // 300 + 1) * 300 + 20, tz=UTC)


def batch_calls(
    world: World,
    rng: random.Random,
    slug: str,
    events: list[tuple[datetime, dict]],
    *,
    minutes: int,
    transport: str,
    lines: bool,
    user_agent: str = "",
) -> list[Call]:
    """Events posted in batches every `minutes`; a batch not posted by `now` has not arrived."""
    buckets: dict[int, list[tuple[datetime, dict]]] = defaultdict(list)
    for ts, event in events:
        buckets[int(ts.timestamp() // (minutes * 60))].append((ts, event))
    calls = []
    headers = {
        "Content-Type": "application/x-ndjson" if lines else "application/json",
        "User-Agent": user_agent or f"{slug}/4.2",
    }
    for bucket in sorted(buckets):
        arrived = datetime.fromtimestamp(
            (bucket + 1) * minutes * 60 + 5 + rng.random() * 20, tz=UTC
        )
        if arrived > world.now:
            continue
        # Batches are assembled per customer, not in time order.
        batch = sorted(
            buckets[bucket], key=lambda item: (item[1].get("customer_id", ""), item[1]["event_id"])
        )
        records = [event for _, event in batch]
        if lines:
            body = "\n".join(json.dumps(r, separators=(",", ":")) for r in records).encode() + b"\n"
        else:
            body = json.dumps(records).encode()
        calls.append(
            Call(
                slug,
                arrived,
                body,
                transport=transport,
                content_type=headers["Content-Type"],
                headers=headers,
            )
        )
    return calls
