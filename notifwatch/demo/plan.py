"""The plan: a deterministic, realistic week of notification traffic, as every source sent it.

`build_plan(seed, now, size)` is pure Python. From a seed, an anchor time and a size it produces
what each source would have sent us during the 7 days before `now`: in-house JSON-lines logs,
a daily CRM CSV export, canonical API batches, and provider webhook bodies as each provider
writes them (SendGrid event batches, Postmark records, Twilio form-encoded status callbacks) for
the messages the in-house sender logged. Each sender has its module; `loading` feeds the plan
through the real ingest code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from notifwatch.demo import (
    billing_api,
    crm_csv,
    postmark,
    push_sender,
    sendgrid,
    shop_sender,
    support_desk,
    twilio,
)
from notifwatch.demo.traffic import Call, LogFile
from notifwatch.demo.world import build_world

DEFAULT_SEED = 7
DEFAULT_SIZE = 20_000
MIN_SIZE = 300  # below this, minimum scenario counts crowd out ordinary traffic
# Share of `size` (notifications) per sending source. Provider callbacks (SendGrid, Postmark,
# Twilio) join the shop sender's notifications rather than adding their own.
SHARE = {
    "shop-sender": 0.36,
    "push-sender": 0.21,
    "billing-api": 0.17,
    "support-desk": 0.15,
    "crm-csv": 0.11,
}


@dataclass
class Plan:
    seed: int
    now: datetime
    size: int
    files: list[LogFile] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)


def build_plan(
    seed: int = DEFAULT_SEED, now: datetime | None = None, size: int = DEFAULT_SIZE
) -> Plan:
    """What every source sent in the week before `now`; the same arguments give the same bytes."""
    now = (now or default_now()).astimezone(UTC)
    world = build_world(seed, now, size)
    plan = Plan(seed=seed, now=now, size=size)
    sends = shop_sender.shop_sends(world, round(size * SHARE["shop-sender"]))
    plan.files += shop_sender.shop_files(world, sends)
    plan.calls += sendgrid.sendgrid_calls(world, sends)
    plan.calls += postmark.postmark_calls(world, sends)
    plan.calls += twilio.twilio_calls(world, sends)
    plan.calls += billing_api.billing_calls(world, round(size * SHARE["billing-api"]))
    plan.calls += support_desk.support_calls(world, round(size * SHARE["support-desk"]))
    # After the shop and the support desk: pushes cite their orders and tickets (world.orders,
    # world.tickets). Each sender draws from its own random stream, so the order changes nothing else.
    plan.files += push_sender.push_files(world, round(size * SHARE["push-sender"]))
    plan.files += crm_csv.crm_files(world, round(size * SHARE["crm-csv"]))
    return plan


def default_now() -> datetime:
    """The current hour: the demo week ends there unless an anchor is given."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
