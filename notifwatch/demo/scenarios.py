"""Which items of the week go wrong, and how a sender writes a missing customer id.

Scenario tables are (scenario, share of the eligible items, minimum count). Minimums keep every
failure family present in small demo sets (tests use a few hundred notifications).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from notifwatch.demo.world import Window

MISSING_CUSTOMER_SHARE = 0.01


def assign(
    rng: random.Random, items: list, table: Iterable[tuple[str, float, int]], attr: str
) -> None:
    """Give each scenario max(minimum, share × eligible) distinct items still on "ok"."""
    free = [item for item in items if getattr(item, attr) == "ok"]
    rng.shuffle(free)
    position = 0
    for name, share, minimum in table:
        count = min(max(minimum, round(share * len(items))), len(free) - position)
        for item in free[position : position + count]:
            setattr(item, attr, name)
        position += count


def ensure_inside(
    rng: random.Random,
    items: list,
    window: Window,
    eligible: Callable[[Any], bool],
    minimum: int,
    attr: str = "",
    name: str = "",
) -> None:
    """At least `minimum` eligible items inside a window (moved there when needed), and every
    eligible item inside it gets scenario `name`."""
    inside = [i for i in items if eligible(i) and i.at in window]
    spare = [
        i
        for i in items
        if eligible(i) and i.at not in window and i.scenario == "ok" and i.downstream == "ok"
    ]
    rng.shuffle(spare)
    for item in spare[: max(0, minimum - len(inside))]:
        item.at = window.pick(rng)
    for item in items:
        if attr and eligible(item) and item.at in window:
            setattr(item, attr, name)


def customer_fields(customer_id: str, form: str) -> dict:
    """How a sender writes a missing customer id: absent, null or an empty string."""
    if form == "ok":
        return {"customer_id": customer_id}
    if form == "null":
        return {"customer_id": None}
    if form == "empty":
        return {"customer_id": ""}
    return {}


def missing_form(rng: random.Random) -> str:
    if rng.random() < MISSING_CUSTOMER_SHARE:
        return rng.choice(("absent", "null", "empty"))
    return "ok"
