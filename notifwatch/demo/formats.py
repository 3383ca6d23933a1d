"""Ids and timestamps written the way senders and providers write them."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

B62 = string.ascii_letters + string.digits


def b62(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(B62) for _ in range(length))


def hexs(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(4 * length):0{length}x}"


def uuid4(rng: random.Random) -> str:
    h = hexs(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_s(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def secs(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def compact(values: dict) -> dict:
    return {k: v for k, v in values.items() if v not in (None, "", {}, [])}
