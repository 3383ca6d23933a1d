"""Demo data: a deterministic, realistic week of notification traffic, fed through real ingest.

`build_plan(seed, now, size)` is pure Python. From a seed, an anchor time and a size it produces
what each source would have sent us during the 7 days before `now`: in-house JSON-lines logs,
a daily CRM CSV export, canonical API batches, and provider webhook bodies as each provider
writes them (SendGrid event batches, Postmark records, Twilio form-encoded status callbacks) for
the messages the in-house sender logged.

`load_plan(plan)` feeds that through the ingest code: `import_lines` for logs and CSV, and
`store_raw` + `process_raw_event` for every HTTP call, canonical or provider webhook (Twilio's
thousands of single callbacks are interpreted the same way, then recorded in batches). Provider
callbacks are interpreted by their source kind's adapter and join the shop sender's send records
by provider message id, as in production. It then back-dates arrival times (`received_at`) to
when each call or line would have arrived, so pages show a week, not a burst.

Re-loading the same plan adds nothing: import lines are unique by content, and every other call
whose body is already stored (as many times as the plan holds it) is skipped.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import random
import string
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery

from notifwatch.deliveries.models import DeliveryEvent, Notification, NotificationRef
from notifwatch.deliveries.recording import record_events
from notifwatch.ingest.actions import save_source
from notifwatch.ingest.importer import csv_lines, import_lines
from notifwatch.ingest.models import Outcome, RawEvent, Source, Transport
from notifwatch.ingest.parsing import BodyProblem
from notifwatch.ingest.presets import load_preset
from notifwatch.ingest.processing import finish, interpret_raw, process_raw_event, store_raw

# ---------------------------------------------------------------------------------------------
# Data tables
# ---------------------------------------------------------------------------------------------

DEFAULT_SEED = 7
DEFAULT_SIZE = 20_000
MIN_SIZE = 300  # below this, minimum scenario counts crowd out ordinary traffic
DAYS = 7


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
    SourceSpec("twilio", "twilio", "Twilio", secret="demo-twilio-auth-token"),
)
DEMO_SLUGS = tuple(spec.slug for spec in SOURCES)
TWILIO_TOKEN = "demo-twilio-auth-token"
TWILIO_ROTATED_TOKEN = "demo-twilio-auth-token-rotated"  # what Twilio signed with, for a while

DEMO_USERS = (
    ("demo", "demo-password", "admin"),
    ("reviewer", "reviewer-password", "reviewer"),
    ("viewer", "viewer-password", "viewer"),
    ("auditor", "auditor-password", "auditor"),
)

# Share of `size` (notifications) per sending source. Provider callbacks (SendGrid, Postmark,
# Twilio) join the shop sender's notifications rather than adding their own.
SHARE = {
    "shop-sender": 0.36,
    "push-sender": 0.21,
    "billing-api": 0.17,
    "support-desk": 0.15,
    "crm-csv": 0.11,
}

FIRST_NAMES = (
    "ana ben chloe dev emma farah gabriel hana ivan jonas kira liam maria noah omar priya "
    "quinn rosa sam tomas uma victor wei ximena yusuf zoe amir bianca carlos dina elena felix "
    "grace hugo ines jamal kofi lena mateo nina oscar paula rahul sofia theo valentina will "
    "yara zane leila"
).split()
LAST_NAMES = (
    "martin kowalski ruiz patel okafor berg haddad nair becker li silva nguyen garcia smith "
    "johansson rossi dubois tanaka kim novak murphy costa fischer ahmed moreau jensen santos "
    "ivanova obi larsen mendes schmidt park walsh cohen farouk lopez meyer khan wright"
).split()
EMAIL_DOMAINS = (("example.com", 5), ("example.net", 3), ("example.org", 2), ("mail.example", 1))
# A corporate mail system that blocks our shop mail as spam (5.7.1).
CORPORATE_DOMAIN = "northwind-corp.example"
# Fictional numbers only: 555-01xx in the US, 07700 900xxx in the UK.
US_AREA_CODES = (
    "202 212 213 303 305 312 404 415 503 512 602 617 702 713 718 206 214 310 720 919".split()
)
COMPANIES = (
    "acme-tools contoso-works fabrikam-supply globex-retail initech-parts umbrella-goods "
    "wayne-outfitters stark-hardware"
).split()
DOWN_COMPANY = "contoso-works"  # its billing webhook endpoint is down for most of one day

# Daily rhythm (local hour 0..23) and the weekend factor, per kind of traffic.
HOURLY = {
    "retail": (
        0.14,
        0.08,
        0.05,
        0.04,
        0.05,
        0.10,
        0.25,
        0.50,
        0.80,
        0.95,
        1.00,
        1.00,
        0.95,
        0.95,
        1.00,
        0.95,
        0.90,
        0.85,
        0.85,
        0.80,
        0.70,
        0.55,
        0.40,
        0.25,
    ),
    "evening": (
        0.20,
        0.10,
        0.05,
        0.04,
        0.05,
        0.10,
        0.30,
        0.55,
        0.70,
        0.75,
        0.75,
        0.80,
        0.85,
        0.80,
        0.80,
        0.80,
        0.85,
        0.90,
        1.00,
        1.00,
        0.95,
        0.80,
        0.55,
        0.35,
    ),
    "office": (
        0.03,
        0.02,
        0.02,
        0.02,
        0.02,
        0.04,
        0.10,
        0.35,
        0.80,
        1.00,
        1.00,
        0.95,
        0.80,
        0.95,
        1.00,
        0.95,
        0.85,
        0.60,
        0.35,
        0.20,
        0.12,
        0.08,
        0.05,
        0.04,
    ),
}
WEEKEND = {"retail": 0.70, "evening": 0.85, "office": 0.30}

# Purposes: (purpose, channel, provider, weight).
SHOP_ORDER_FLOW = (
    # (purpose, channel, provider, probability, days after the order)
    ("order_confirmation", "email", "sendgrid", 1.00, 0),
    ("order_shipped", "email", "sendgrid", 0.65, 1),
    ("order_shipped_sms", "sms", "twilio", 0.35, 1),
    ("out_for_delivery_sms", "sms", "twilio", 0.45, 2),
    ("order_feedback_request", "email", "sendgrid", 0.30, 4),
)
SHOP_ACCOUNT = (
    ("password_reset", "email", "postmark", 5),
    ("email_verification", "email", "postmark", 4),
    ("login_code_sms", "sms", "twilio", 3),
)
PUSH_PURPOSES = (
    ("out_for_delivery_push", "order", 40),
    ("order_shipped_push", "order", 25),
    ("ticket_update_push", "ticket", 10),
    ("back_in_stock_push", "product", 15),
    ("weekly_deals_push", "campaign", 10),
)
BILLING_PURPOSES = (
    # (purpose, channel, weight); invoices go out in a nightly run at 02:00
    ("invoice_issued", "email", 30),
    ("payment_receipt", "email", 18),
    ("payment_failed", "email", 6),
    ("payment_failed", "in_app", 6),
    ("renewal_notice", "email", 8),
    ("renewal_notice", "in_app", 7),
    ("usage_alert", "in_app", 10),
    ("invoice_available", "webhook", 15),
)
SUPPORT_FLOW = ("ticket_received", "ticket_reply", "ticket_update_sms", "satisfaction_survey")
CRM_PURPOSES = (
    ("renewal_reminder", "email", "brevo", 45),
    ("spring_sale_campaign", "email", "brevo", 30),
    ("appointment_reminder", "other", "whatsapp", 15),
    ("renewal_reminder_sms", "sms", "messagebird", 10),
)

# Scenario tables: (scenario, share of the eligible items, minimum count). Minimums keep every
# failure family present in small demo sets (tests use a few hundred notifications).
SHOP_SCENARIOS = (
    ("duplicate_send", 0.003, 2),
    ("retry_429", 0.006, 2),
    ("queued_stuck", 0.006, 1),
    ("opted_out", 0.003, 1),
)
SHOP_SMS_SCENARIOS = (("sync_21614", 0.01, 1), ("opted_out", 0.015, 1))
SENDGRID_SCENARIOS = (
    ("hard_bounce", 0.025, 2),
    ("spam_block", 0.012, 2),
    ("mailbox_full", 0.005, 1),
    ("unsubscribed", 0.01, 1),
    ("complaint", 0.003, 1),
    ("deferred_then_delivered", 0.025, 2),
    ("processed_only", 0.005, 1),
    ("deferred_pending", 0.004, 1),
    ("unclassified", 0.001, 1),
    ("out_of_order", 0.01, 1),
)
POSTMARK_SCENARIOS = (
    ("hard_bounce", 0.015, 1),
    ("soft_bounce", 0.008, 1),
    ("complaint", 0.003, 1),
    ("transient", 0.008, 1),
    ("repeat", 0.005, 1),
    ("subscription_change", 0.004, 1),
)
TWILIO_SCENARIOS = (
    ("unreachable", 0.02, 1),
    ("landline", 0.01, 1),
    ("filtered", 0.012, 1),
    ("stop", 0.01, 1),
    ("unknown", 0.002, 1),
    ("no_dlr", 0.025, 1),
    ("dup_callback", 0.01, 1),
    ("out_of_order", 0.015, 1),
)
PUSH_SCENARIOS = (
    ("unavailable_retry", 0.006, 1),
    ("quota_retry", 0.01, 1),
    ("quota_pending", 0.003, 1),
    ("apns_unregistered", 0.006, 1),
)
BILLING_EMAIL_SCENARIOS = (
    ("bounce", 0.015, 1),
    ("too_large", 0.004, 1),
    ("mailbox_full", 0.003, 1),
    ("complaint", 0.002, 1),
    ("delayed", 0.004, 1),
)
BILLING_IN_APP_SCENARIOS = (("unseen", 0.06, 1),)
BILLING_WEBHOOK_SCENARIOS = (("retry_ok", 0.03, 1), ("retrying_now", 0.03, 1))
SUPPORT_SCENARIOS = (("bounce", 0.02, 1), ("no_outcome", 0.025, 1))
SUPPORT_SMS_SCENARIOS = (("unreachable", 0.02, 1),)
CRM_SCENARIOS = (("bounce", 0.03, 1), ("complaint", 0.004, 1), ("no_outcome", 0.015, 1))
CRM_CAMPAIGN_SCENARIOS = (("unsubscribed", 0.03, 1),)
CRM_WHATSAPP_SCENARIOS = (("undeliverable", 0.03, 1),)

MISSING_CUSTOMER_SHARE = 0.01


# ---------------------------------------------------------------------------------------------
# The world: customers, clock, incidents
# ---------------------------------------------------------------------------------------------


@dataclass
class Customer:
    id: str
    email: str
    phone: str
    platform: str  # android, ios or "" (no app)
    device_id: str
    stale_token: bool = False
    company: str = ""  # business accounts get billing webhooks


@dataclass
class Window:
    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def pick(self, rng: random.Random) -> datetime:
        return self.start + (self.end - self.start) * rng.random()


@dataclass
class World:
    seed: int
    now: datetime
    size: int
    tz: ZoneInfo
    customers: list[Customer]
    outage: Window  # SendGrid API 503 / timeouts
    auth: Window  # Twilio API 401 after an auth token rotation
    rejected: Window  # Twilio callbacks signed with the new token, notifwatch still on the old
    mapping_break: datetime  # shop-sender renamed `ts` to `timestamp`
    silence: datetime  # Postmark stops reporting
    webhook_down: Window  # one business customer's billing endpoint refuses connections
    token_mixup: Window  # support-desk posts with a stale bearer token
    _weights: dict[str, list[float]] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return self.now - timedelta(days=DAYS)

    @property
    def incidents(self) -> tuple[Window, ...]:
        return (self.outage, self.auth, self.rejected)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def pick_time(self, rng: random.Random, profile: str, days_before: int = 0) -> datetime:
        """A moment in the week (or `days_before` it too) following the profile's rhythm."""
        first = self.start - timedelta(days=days_before)
        hours = (DAYS + days_before) * 24
        weights = self._weights.get(f"{profile}:{days_before}")
        if weights is None:
            weights, total = [], 0.0
            for hour in range(hours):
                local = self.local(first + timedelta(hours=hour))
                factor = WEEKEND[profile] if local.weekday() >= 5 else 1.0
                total += HOURLY[profile][local.hour] * factor
                weights.append(total)
            self._weights[f"{profile}:{days_before}"] = weights
        hour = rng.choices(range(hours), cum_weights=weights)[0]
        return first + timedelta(hours=hour, seconds=rng.random() * 3600)

    def calm(self, moment: datetime) -> bool:
        return not any(moment in window for window in self.incidents)

    def pick_customer(self, rng: random.Random, **want) -> Customer:
        if not want:
            return rng.choice(self.customers)
        pool = [c for c in self.customers if all(getattr(c, k) == v for k, v in want.items())]
        return rng.choice(pool or self.customers)


def local_window(now: datetime, tz: ZoneInfo, days_ago: int, start: float, end: float) -> Window:
    day = (now.astimezone(tz) - timedelta(days=days_ago)).date()
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    return Window(
        (midnight + timedelta(hours=start)).astimezone(UTC),
        (midnight + timedelta(hours=end)).astimezone(UTC),
    )


def build_world(seed: int, now: datetime, size: int) -> World:
    tz = ZoneInfo(settings.TIME_ZONE)
    rng = random.Random(f"{seed}:customers")
    return World(
        seed=seed,
        now=now,
        size=size,
        tz=tz,
        customers=build_customers(rng, max(150, min(3000, size // 8))),
        outage=local_window(now, tz, 4, 13, 16),
        auth=local_window(now, tz, 2, 14, 16),
        rejected=local_window(now, tz, 2, 14, 18),
        mapping_break=now - timedelta(hours=5),
        silence=now - timedelta(hours=26),
        webhook_down=local_window(now, tz, 3, 6, 20),
        token_mixup=local_window(now, tz, 5, 9, 12),
    )


def build_customers(rng: random.Random, count: int) -> list[Customer]:
    phones = [f"+1{area}55501{n:02d}" for area in US_AREA_CODES for n in range(100)]
    phones += [f"+447700900{n:03d}" for n in range(1000)]
    rng.shuffle(phones)
    domains = [d for d, _ in EMAIL_DOMAINS]
    domain_weights = [w for _, w in EMAIL_DOMAINS]
    seen: set[str] = set()
    customers = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        corporate = rng.random() < 0.03 or index in (5, 6)
        domain = CORPORATE_DOMAIN if corporate else rng.choices(domains, domain_weights)[0]
        local_part = rng.choice((f"{first}.{last}", f"{first[0]}.{last}", f"{first}{last[:1]}"))
        email = f"{local_part}@{domain}"
        suffix = 2
        while email in seen:
            email = f"{local_part}{suffix}@{domain}"
            suffix += 1
        seen.add(email)
        platform = rng.choices(("android", "ios", ""), (55, 35, 10))[0]
        customers.append(
            Customer(
                id=f"cus_{10001 + index}",
                email=email,
                phone=phones[index],
                platform=platform,
                device_id=f"dev_{hexs(rng, 10)}" if platform else "",
                stale_token=bool(platform) and rng.random() < 0.07,
                company=rng.choice(COMPANIES) if rng.random() < 0.08 or index < 3 else "",
            )
        )
    # Two customer ids share one address: a household using one mailbox.
    customers[1].email = customers[0].email
    for index, platform in ((7, "android"), (8, "ios")):
        customers[index].platform = platform
        customers[index].device_id = customers[index].device_id or f"dev_{hexs(rng, 10)}"
        customers[index].stale_token = True
    customers[2].company = DOWN_COMPANY
    return customers


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

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
    eligible,
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


# ---------------------------------------------------------------------------------------------
# The plan: what every source sent, as bytes
# ---------------------------------------------------------------------------------------------


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
class Plan:
    seed: int
    now: datetime
    size: int
    files: list[LogFile] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)


def build_plan(
    seed: int = DEFAULT_SEED, now: datetime | None = None, size: int = DEFAULT_SIZE
) -> Plan:
    now = (now or default_now()).astimezone(UTC)
    world = build_world(seed, now, size)
    plan = Plan(seed=seed, now=now, size=size)
    sends = shop_sends(world, round(size * SHARE["shop-sender"]))
    plan.files += shop_files(world, sends)
    plan.calls += sendgrid_calls(world, sends)
    plan.calls += postmark_calls(world, sends)
    plan.calls += twilio_calls(world, sends)
    plan.files += push_files(world, round(size * SHARE["push-sender"]))
    plan.calls += billing_calls(world, round(size * SHARE["billing-api"]))
    plan.calls += support_calls(world, round(size * SHARE["support-desk"]))
    plan.files += crm_files(world, round(size * SHARE["crm-csv"]))
    return plan


def default_now() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


# --- shop-sender: the in-house sender's JSON-lines log ---------------------------------------


@dataclass
class Send:
    """One notification the shop sender sent through SendGrid, Postmark or Twilio."""

    at: datetime
    purpose: str
    channel: str
    provider: str
    customer: Customer
    refs: dict[str, str]
    form: str = "ok"  # how the customer id is written
    scenario: str = "ok"  # what happened when the sender called the provider
    downstream: str = "ok"  # what the provider reported afterwards
    key: str = ""
    notif_id: str = ""
    accepted: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return self.customer.id if self.form == "ok" else ""

    @property
    def recipient(self) -> str:
        return self.customer.email if self.channel == "email" else self.customer.phone


def shop_sends(world: World, count: int) -> list[Send]:
    rng = world.rng("shop")
    sends: list[Send] = []
    order_number = 118000
    account_weights = [w for *_, w in SHOP_ACCOUNT]
    household = iter([world.customers[0], world.customers[1]] * 2)
    while len(sends) < count:
        if rng.random() < 0.78:
            order_number += 1
            customer = next(household, None) or world.pick_customer(rng)
            # Orders from the days before the week still get their shipping notices in it.
            ordered = world.pick_time(rng, "retail", days_before=4)
            order_id = f"ORD-{world.now.year}-{order_number}"
            for purpose, channel, provider, chance, days in SHOP_ORDER_FLOW:
                at = ordered + timedelta(days=days, minutes=(rng.random() - 0.5) * 180 * bool(days))
                if rng.random() < chance and world.start <= at < world.now:
                    send = Send(at, purpose, channel, provider, customer, {"order_id": order_id})
                    send.key = f"ord-{order_number}:{purpose}:{channel}"
                    sends.append(send)
        else:
            purpose, channel, provider, _ = rng.choices(SHOP_ACCOUNT, account_weights)[0]
            customer = world.pick_customer(rng)
            send = Send(world.pick_time(rng, "retail"), purpose, channel, provider, customer, {})
            send.key = f"usr-{customer.id[4:]}:{purpose}:{channel}:{len(sends)}"
            sends.append(send)
    for send in sends:
        send.form = missing_form(rng)
        send.notif_id = f"ntf_{b62(rng, 6).upper()}"
    calm = [s for s in sends if world.calm(s.at) and s.at < world.mapping_break]
    assign(rng, calm, SHOP_SCENARIOS, "scenario")
    assign(rng, [s for s in calm if s.channel == "sms"], SHOP_SMS_SCENARIOS, "scenario")
    for send in sends:
        if send.scenario == "queued_stuck":
            send.at = calm_time(world, rng, 26, 96)
    ensure_inside(
        rng, sends, world.outage, lambda s: s.provider == "sendgrid", 4, "scenario", "outage"
    )
    ensure_inside(
        rng, sends, world.auth, lambda s: s.provider == "twilio", 3, "scenario", "auth_401"
    )
    after_auth = Window(world.auth.end, world.rejected.end)
    ensure_inside(rng, sends, after_auth, lambda s: s.provider == "twilio", 3)
    # Sends through Postmark go on after it falls silent.
    silent = Window(world.silence, world.mapping_break)
    ensure_inside(rng, sends, silent, lambda s: s.provider == "postmark", 3)
    sends.sort(key=lambda s: s.at)
    assign_downstream(world, rng, sends)
    sends.sort(key=lambda s: s.at)
    return sends


def assign_downstream(world: World, rng: random.Random, sends: list[Send]) -> None:
    """What each provider reports after accepting a send (only for sends accepted first time)."""

    def eligible(provider: str, before: datetime) -> list[Send]:
        return [
            s
            for s in sends
            if s.provider == provider
            and s.scenario == "ok"
            and world.calm(s.at)
            and world.start + timedelta(hours=2) < s.at < before
        ]

    assign(
        rng, eligible("sendgrid", world.now - timedelta(hours=6)), SENDGRID_SCENARIOS, "downstream"
    )
    assign(
        rng,
        eligible("postmark", world.silence - timedelta(hours=2)),
        POSTMARK_SCENARIOS,
        "downstream",
    )
    assign(rng, eligible("twilio", world.now - timedelta(hours=2)), TWILIO_SCENARIOS, "downstream")
    for send in sends:
        if send.downstream == "spam_block":
            send.customer = corporate(world, rng)
        elif send.downstream == "deferred_pending":
            send.at = world.now - timedelta(minutes=30 + 150 * rng.random())
        elif send.downstream in ("processed_only", "no_dlr"):
            send.at = calm_time(world, rng, 30, 120)
    # Later SendGrid sends to an address that hard-bounced are dropped by SendGrid.
    bounced: set[str] = set()
    for send in sorted(sends, key=lambda s: s.at):
        if send.provider != "sendgrid":
            continue
        if send.downstream == "hard_bounce":
            bounced.add(send.customer.email)
        elif send.customer.email in bounced and send.downstream == "ok" and send.scenario == "ok":
            send.downstream = "dropped_bounced"


def calm_time(world: World, rng: random.Random, low_hours: float, high_hours: float) -> datetime:
    """A moment `low_hours`..`high_hours` ago outside every incident window."""
    while True:
        moment = world.now - timedelta(hours=low_hours + (high_hours - low_hours) * rng.random())
        if world.calm(moment):
            return moment


def corporate(world: World, rng: random.Random) -> Customer:
    pool = [c for c in world.customers if c.email.endswith("@" + CORPORATE_DOMAIN)]
    return rng.choice(pool)


def shop_record(
    send: Send,
    rng: random.Random,
    ts: datetime,
    attempt: int,
    status: str,
    *,
    message_id: str | None = None,
    error: dict | None = None,
    host: str = "",
    event: str = "notification.attempt",
) -> dict:
    record = {
        "ts": iso(ts),
        "level": "error" if error and not error.get("retryable") else "warn" if error else "info",
        "service": "notif-sender",
        "host": host or f"notif-worker-{rng.randint(1, 4)}",
        "event": event,
        "channel": send.channel,
        "provider": send.provider,
        **customer_fields(send.customer.id, send.form),
        **send.refs,
        "template": send.purpose,
        "attempt": attempt,
        "idempotency_key": send.key,
        "message_id": message_id,
        "recipient": {"email" if send.channel == "email" else "phone": send.recipient},
        "status": status,
        "error": error,
        "duration_ms": rng.randint(80, 900),
        "trace_id": hexs(rng, 16),
    }
    if message_id:
        record["provider_http_status"] = {"sendgrid": 202, "postmark": 200, "twilio": 201}[
            send.provider
        ]
    if error and error.get("retryable"):
        record["next_retry_at"] = iso(ts + secs(30 * 2 ** (attempt - 1)))
    record["notif_id"] = send.notif_id
    return record


def new_message_id(rng: random.Random, provider: str) -> str:
    if provider == "sendgrid":
        return b62(rng, 22)
    if provider == "postmark":
        return uuid4(rng)
    return "SM" + hexs(rng, 32)


API_PATHS = {"sendgrid": "/v3/mail/send", "postmark": "/email", "twilio": "/2010-04-01/Messages"}


def outage_error(rng: random.Random, provider: str, retryable: bool = True) -> dict:
    path = API_PATHS[provider]
    if rng.random() < 0.6:
        return {
            "type": "http_status",
            "code": 503,
            "http_status": 503,
            "message": f"POST {path} returned 503 Service Unavailable",
            "retryable": retryable,
        }
    return {
        "type": "timeout",
        "code": "ETIMEDOUT",
        "message": f"POST {path} timed out after 10000 ms (no response)",
        "retryable": retryable,
    }


def shop_attempts(send: Send, rng: random.Random) -> list[tuple[datetime, dict]]:
    """The log lines the sender wrote for one send; fills `send.accepted` with message ids."""
    t = send.at
    lines: list[tuple[datetime, dict]] = []

    def deliver(at: datetime, attempt: int, host: str = "") -> None:
        # The provider's API took the message: the sender logs "accepted" and its message id.
        # What happened next is only known from the provider's callbacks, which join this record.
        message_id = new_message_id(rng, send.provider)
        send.accepted.append((message_id, at))
        lines.append(
            (at, shop_record(send, rng, at, attempt, "accepted", message_id=message_id, host=host))
        )

    if send.scenario == "outage":
        failures = rng.choice((1, 1, 2, 2, 3, 4, 5))
        for attempt in range(1, failures + 1):
            gave_up = failures == 5 and attempt == 5
            error = outage_error(rng, send.provider, retryable=not gave_up)
            lines.append((t, shop_record(send, rng, t, attempt, "failed", error=error)))
            t += secs(30 * 2 ** (attempt - 1) + rng.random() * 5)
        if failures < 5:
            deliver(t, failures + 1)
    elif send.scenario == "auth_401":
        error = {
            "type": "provider_error",
            "code": 20003,
            "http_status": 401,
            "message": "Authenticate: HTTP 401 from api.twilio.com (error 20003, invalid credentials)",
            "retryable": False,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
    elif send.scenario == "retry_429":
        error = {
            "type": "http_status",
            "code": 429,
            "http_status": 429,
            "message": f"POST {API_PATHS[send.provider]} returned 429 Too Many Requests",
            "retryable": True,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
        deliver(t + secs(30 + rng.random() * 40), 2)
    elif send.scenario == "sync_21614":
        error = {
            "type": "provider_error",
            "code": 21614,
            "http_status": 400,
            "message": f"'To' number {send.recipient} is not a valid mobile number",
            "retryable": False,
        }
        lines.append((t, shop_record(send, rng, t, 1, "failed", error=error)))
    elif send.scenario == "opted_out":
        # The sender's own opt-out list: nothing was sent to the provider.
        record = shop_record(send, rng, t, 1, "suppressed")
        record["suppression"] = "sms_stop" if send.channel == "sms" else "email_unsubscribed"
        lines.append((t, record))
    elif send.scenario == "queued_stuck":
        lines.append((t, shop_record(send, rng, t, 1, "queued")))
    elif send.scenario == "duplicate_send":
        deliver(t, 1, host="notif-worker-1")
        deliver(t + secs(20 + rng.random() * 40), 1, host="notif-worker-3")
    else:
        deliver(t, 1)
    return lines


MALFORMED_KINDS = ("truncated", "nan", "repr", "array", "traceback", "two_objects", "no_event")


def malformed_lines(send: Send, rng: random.Random, kind: str) -> list[str]:
    record = shop_record(send, rng, send.at, 1, "delivered", message_id=b62(rng, 22))
    text = json.dumps(record, separators=(",", ":"))
    if kind == "truncated":  # the worker was killed mid-write
        return [text[: int(len(text) * (0.3 + 0.5 * rng.random()))]]
    if kind == "nan":
        return [text.replace(f'"duration_ms":{record["duration_ms"]}', '"duration_ms":NaN')]
    if kind == "repr":
        short = {"ts": record["ts"], "event": record["event"], "status": "failed"}
        return [repr({**short, "customer_id": send.customer.id})]
    if kind == "array":
        return [json.dumps([record["event"], send.channel, send.customer.id, "delivered"])]
    if kind == "traceback":
        return [
            "Traceback (most recent call last):",
            f'  File "/app/notif/providers/{send.provider}.py", line 88, in send',
            "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.sendgrid.com', "
            f"port=443): Max retries exceeded (trace {hexs(rng, 16)})",
        ]
    if kind == "two_objects":
        a = {
            "ts": record["ts"],
            "event": record["event"],
            "status": "queued",
            "customer_id": send.customer.id,
        }
        b = {**a, "status": "failed"}
        return [json.dumps(a, separators=(",", ":")) + json.dumps(b, separators=(",", ":"))]
    # A plain log message: no event, no status.
    return [
        json.dumps(
            {
                "ts": record["ts"],
                "service": "notif-sender",
                "channel": send.channel,
                "customer_id": send.customer.id,
                "message": f"rendered template {send.purpose} ({rng.randint(90, 900)} chars)",
            },
            separators=(",", ":"),
        )
    ]


def shop_files(world: World, sends: list[Send]) -> list[LogFile]:
    rng = world.rng("shop-lines")
    entries: list[tuple[datetime, int, str]] = []  # (ts, tiebreak, text)
    for send in sends:
        for ts, record in shop_attempts(send, rng):
            if ts < world.now:
                entries.append((ts, len(entries), shop_line(world, record, ts)))
        if rng.random() < 0.012:  # debug lines about rendering: not delivery events
            record = shop_record(
                send, rng, send.at - secs(0.2), 0, None, event="notification.rendered"
            )
            record["level"] = "debug"
            entries.append((send.at - secs(0.2), len(entries), shop_line(world, record, send.at)))
    # Malformed lines: every kind at least once, tracebacks mostly during the outage.
    count = max(len(MALFORMED_KINDS), round(len(sends) * 0.002))
    kinds = list(MALFORMED_KINDS) + [
        rng.choice(("truncated", "traceback", "nan")) for _ in range(count - len(MALFORMED_KINDS))
    ]
    calm_sends = [s for s in sends if s.at < world.mapping_break]
    outage_sends = [s for s in sends if s.at in world.outage] or calm_sends
    for kind in kinds:
        send = rng.choice(outage_sends if kind == "traceback" else calm_sends)
        for offset, text in enumerate(malformed_lines(send, rng, kind)):
            entries.append((send.at + secs(0.5 + offset * 0.001), len(entries), text))
    # A few blank lines, as log shippers write them.
    for _ in range(3):
        entries.append((world.pick_time(rng, "retail"), len(entries), "   "))
    entries.sort()
    by_day: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for ts, _, text in entries:
        by_day[world.local(ts).date().isoformat()].append((ts, text))
    files = []
    for day in sorted(by_day):
        lines, arrivals = [], {}
        for ts, text in by_day[day]:
            arrived = shipped_at(ts)
            if arrived > world.now:
                continue  # not shipped yet
            number = len(lines) + 1
            lines.append((number, text.encode(), None))
            arrivals[number] = arrived
        files.append(LogFile("shop-sender", f"notif-sender-{day}.jsonl", lines, arrivals))
    return files


def shop_line(world: World, record: dict, ts: datetime) -> str:
    if ts >= world.mapping_break:
        # The logging library upgrade renamed `ts` to `timestamp`: the mapping no longer finds it.
        record = {("timestamp" if k == "ts" else k): v for k, v in record.items()}
    return json.dumps(record, separators=(",", ":"))


def shipped_at(ts: datetime) -> datetime:
    """Log lines are shipped every 5 minutes."""
    epoch = ts.timestamp()
    return datetime.fromtimestamp((epoch // 300 + 1) * 300 + 20, tz=UTC)


# --- Provider webhooks for shop sends ---------------------------------------------------------
#
# Each provider's own webhook body, as its adapter (notifwatch.ingest.providers) reads it. The
# callbacks carry the provider message id the shop sender logged when the provider accepted the
# message; processing joins them to that send record, which gives the customer, purpose and refs.


@dataclass
class Callback:
    arrival: datetime
    record: dict


def sendgrid_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("sendgrid")
    callbacks: list[Callback] = []
    for send in sends:
        if send.provider != "sendgrid":
            continue
        for message_id, at in send.accepted:
            callbacks += sendgrid_events(send, message_id, at, rng)
    # One-off sends from a legacy bulk script, without any of our ids (identity unknown).
    for _ in range(max(1, round(len(sends) * 0.0005))):
        at = world.pick_time(rng, "retail")
        record = {
            "email": f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}@@example.com",
            "timestamp": int(at.timestamp()),
            "smtp-id": f"<{b62(rng, 22)}@geopod-ismtpd-2>",
            "event": "dropped",
            "category": "legacy-bulk-script",
            "sg_event_id": b62(rng, 22),
            "sg_message_id": f"{b62(rng, 22)}.recvd-7c4f9d6b8-2xkqm-1-{hexs(rng, 8).upper()}-3.0",
            "reason": "Invalid",
        }
        callbacks.append(Callback(at + secs(5), record))
    callbacks = [c for c in callbacks if c.arrival < world.now]
    callbacks.sort(key=lambda c: c.arrival)
    # SendGrid batches events, several per POST: one POST per SENDGRID_BATCH of arrivals here.
    batches: dict[int, list[Callback]] = defaultdict(list)
    for callback in callbacks:
        batches[int(callback.arrival.timestamp() // SENDGRID_BATCH.total_seconds())].append(
            callback
        )
    calls: list[Call] = []
    keys = sorted(batches)
    repeat_event = set(rng.sample(range(len(keys)), min(len(keys), max(1, len(keys) // 70))))
    repost = set(rng.sample(range(len(keys)), min(len(keys), max(1, len(keys) // 100))))
    carried: list[Callback] = []
    for index, key in enumerate(keys):
        batch = carried + batches[key]
        carried = []
        if index in repeat_event:
            # The next POST repeats this batch's last event (same sg_event_id).
            carried = [batch[-1]]
        arrived = max(c.arrival for c in batches[key])
        body = json.dumps([c.record for c in batch]).encode()
        calls.append(Call("sendgrid", arrived, body, headers=SENDGRID_HEADERS))
        if index in repost:
            # Our endpoint answered too slowly; SendGrid posted the same batch again.
            again = arrived + secs(180 + rng.random() * 120)
            if again < world.now:
                calls.append(Call("sendgrid", again, body, headers=SENDGRID_HEADERS))
    return calls


SENDGRID_HEADERS = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
SENDGRID_BATCH = timedelta(minutes=30)


def sendgrid_events(
    send: Send, message_id: str, at: datetime, rng: random.Random
) -> list[Callback]:
    sg_message_id = f"{message_id}.recvd-7c4f9d6b8-2xkqm-1-{hexs(rng, 8).upper()}-3.0"
    events: list[tuple[datetime, str, dict]] = []
    scenario = send.downstream
    t = at + secs(1 + rng.random())
    if scenario not in ("unsubscribed", "dropped_bounced"):
        events.append((t, "processed", {}))
    mx = f"mx{rng.randint(1, 3)}.{send.recipient.split('@')[-1]}"

    def delivered(when: datetime) -> None:
        events.append(
            (
                when,
                "delivered",
                {
                    "ip": "198.51.100.24",
                    "tls": 1,
                    "response": f"250 2.0.0 OK: queued as {b62(rng, 12)}",
                },
            )
        )
        if rng.random() < 0.35:
            opened = when + timedelta(minutes=rng.expovariate(1 / 180))
            events.append(
                (
                    opened,
                    "open",
                    {"ip": f"203.0.113.{rng.randint(2, 250)}", "useragent": "Mozilla/5.0"},
                )
            )
            if rng.random() < 0.2:
                events.append(
                    (
                        opened + secs(20 + rng.random() * 300),
                        "click",
                        {"url": "https://shop.harborpine.example/orders"},
                    )
                )

    if scenario == "hard_bounce":
        events.append(
            (
                t + secs(2),
                "bounce",
                {
                    "type": "bounce",
                    "status": "5.1.1",
                    "bounce_classification": "Invalid Address",
                    "reason": f"550 5.1.1 <{send.recipient}>: Recipient address rejected: User unknown",
                },
            )
        )
    elif scenario == "spam_block":
        events.append(
            (
                t + secs(3),
                "bounce",
                {
                    "type": "blocked",
                    "status": "5.7.1",
                    "bounce_classification": "Reputation",
                    "reason": f"550 5.7.1 [198.51.100.24] Message rejected by {mx} under local policy: looks like unsolicited mail",
                },
            )
        )
    elif scenario == "unclassified":
        events.append(
            (
                t + secs(3),
                "bounce",
                {
                    "type": "bounce",
                    "status": "5.0.0",
                    "bounce_classification": "Unclassified",
                    "reason": "550 5.0.0 Message rejected",
                },
            )
        )
    elif scenario == "mailbox_full":
        events.append(
            (
                t + secs(4),
                "deferred",
                {
                    "attempt": "1",
                    "response": f"452 4.2.2 <{send.recipient}>: mailbox over quota, try again later",
                },
            )
        )
        events.append(
            (
                t + timedelta(minutes=45),
                "deferred",
                {
                    "attempt": "2",
                    "response": f"452 4.2.2 <{send.recipient}>: mailbox over quota, try again later",
                },
            )
        )
        events.append(
            (
                t + timedelta(hours=5),
                "bounce",
                {
                    "type": "bounce",
                    "status": "5.2.2",
                    "bounce_classification": "Mailbox Unavailable",
                    "reason": "552 5.2.2 Mailbox full: the recipient's storage quota is exceeded",
                },
            )
        )
    elif scenario in ("deferred_then_delivered", "deferred_pending"):
        responses = (
            "421 4.7.0 [198.51.100.24] Too many concurrent connections from this IP, try again later",
            f"451 4.3.0 Temporary server error at {mx}, please retry",
            f"421 4.4.5 {mx} is busy, try again later",
        )
        tries = rng.choice((1, 1, 2)) if scenario == "deferred_then_delivered" else 2
        when = t + secs(3)
        for attempt in range(1, tries + 1):
            events.append(
                (when, "deferred", {"attempt": str(attempt), "response": rng.choice(responses)})
            )
            when += timedelta(minutes=15 * attempt + rng.random() * 10)
        if scenario == "deferred_then_delivered":
            delivered(when)
    elif scenario == "unsubscribed":
        events.append((t, "dropped", {"reason": "Unsubscribed Address"}))
    elif scenario == "dropped_bounced":
        events.append((t, "dropped", {"reason": "Bounced Address"}))
    elif scenario == "processed_only":
        pass  # SendGrid never reported an outcome: late
    else:
        delivered(t + secs(2 + rng.random() * 30))
        if scenario == "complaint":
            events.append((t + timedelta(hours=6 + 24 * rng.random()), "spamreport", {}))
    callbacks = []
    for when, kind, extra in events:
        record = {
            "email": send.recipient,
            "timestamp": int(when.timestamp()),
            "smtp-id": f"<{message_id}@geopod-ismtpd-4>",
            "event": kind,
            "category": ["transactional", send.purpose],
            "sg_event_id": b62(rng, 22),
            "sg_message_id": sg_message_id,
            **extra,
            # The message's custom_args, which SendGrid merges into every event.
            **({"customer_id": send.customer_id} if send.customer_id else {}),
            **send.refs,
            "template": send.purpose,
            "notif_id": send.notif_id,
        }
        arrival = when + secs(2 + rng.random() * 60)
        if scenario == "out_of_order" and kind == "processed":
            arrival += timedelta(minutes=12)  # arrives after the delivery it preceded
        callbacks.append(Callback(arrival, record))
    return callbacks


POSTMARK_BOUNCES = {
    "hard_bounce": (
        "HardBounce",
        1,
        "Hard bounce",
        "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "smtp;550 5.1.1 <{email}>: Recipient address rejected: User unknown in local recipient table",
    ),
    "soft_bounce": (
        "SoftBounce",
        4096,
        "Soft bounce",
        "Unable to temporarily deliver message (i.e. mailbox full, account disabled, exceeds quota, out of disk space).",
        "smtp;552 5.2.2 Mailbox full: {email} has exceeded its storage quota",
    ),
    "transient": (
        "Transient",
        2,
        "Message delayed",
        "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
        "smtp;421 4.4.2 Connection timed out, will retry",
    ),
}


def postmark_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("postmark")
    calls = []
    for send in sends:
        if send.provider != "postmark":
            continue
        for message_id, at in send.accepted:
            for callback in postmark_events(send, message_id, at, rng):
                if callback.arrival >= min(world.silence, world.now):
                    continue  # Postmark stopped reporting (the webhook was switched off)
                # One record per POST; a SubscriptionChange is recognised and ignored.
                body = json.dumps(callback.record).encode()
                calls.append(Call("postmark", callback.arrival, body, headers=POSTMARK_HEADERS))
                if send.downstream == "repeat" and callback.record["RecordType"] == "Delivery":
                    # Postmark did not get our 200 in time and posted the record again.
                    again = callback.arrival + secs(40)
                    calls.append(Call("postmark", again, body, headers=POSTMARK_HEADERS))
    return calls


POSTMARK_HEADERS = {"Content-Type": "application/json", "User-Agent": "Postmark"}


def postmark_events(
    send: Send, message_id: str, at: datetime, rng: random.Random
) -> list[Callback]:
    # The message's Metadata, which Postmark echoes in every record about it.
    metadata = compact({"customer_id": send.customer_id, **send.refs, "notif_id": send.notif_id})
    base = {"ServerID": 4412078, "MessageStream": "outbound", "MessageID": message_id}
    subject = {
        "password_reset": "Reset your password",
        "email_verification": "Confirm your email address",
    }.get(send.purpose, "Your Harborpine account")
    scenario = send.downstream
    records: list[tuple[datetime, dict]] = []
    t = at + secs(2 + rng.random() * 20)

    def delivery(when: datetime) -> None:
        records.append(
            (
                when,
                {
                    "RecordType": "Delivery",
                    **base,
                    "Recipient": send.recipient,
                    "Tag": send.purpose,
                    "DeliveredAt": iso_s(when),
                    "Details": f"smtp;250 2.0.0 OK {int(when.timestamp())} accepted for delivery",
                    "Metadata": metadata,
                },
            )
        )

    def bounce(when: datetime, kind: str) -> None:
        name, code, label, description, details = POSTMARK_BOUNCES[kind]
        records.append(
            (
                when,
                {
                    "RecordType": "Bounce",
                    "ID": rng.randint(3_800_000_000, 3_899_999_999),
                    "Type": name,
                    "TypeCode": code,
                    "Name": label,
                    "Tag": send.purpose,
                    **base,
                    "Description": description,
                    "Details": details.format(email=send.recipient),
                    "Email": send.recipient,
                    "From": "account@mail.harborpine.example",
                    "BouncedAt": iso_s(when),
                    "DumpAvailable": True,
                    "Inactive": kind == "hard_bounce",
                    "CanActivate": True,
                    "Subject": subject,
                    "Metadata": metadata,
                },
            )
        )

    if scenario in ("hard_bounce", "soft_bounce"):
        bounce(t, scenario)
    elif scenario == "transient":
        bounce(t, "transient")
        delivery(t + timedelta(minutes=20 + 30 * rng.random()))
    else:
        delivery(t)
        if scenario == "complaint":
            when = t + timedelta(hours=3 + 20 * rng.random())
            records.append(
                (
                    when,
                    {
                        "RecordType": "SpamComplaint",
                        "ID": rng.randint(3_800_000_000, 3_899_999_999),
                        "Type": "SpamComplaint",
                        "TypeCode": 100001,
                        "Name": "Spam complaint",
                        "Tag": send.purpose,
                        **base,
                        "Description": "The subscriber explicitly marked this message as spam.",
                        "Details": "Complaint received via ISP feedback loop",
                        "Email": send.recipient,
                        "From": "account@mail.harborpine.example",
                        "BouncedAt": iso_s(when),
                        "DumpAvailable": True,
                        "Inactive": True,
                        "CanActivate": False,
                        "Subject": subject,
                        "Metadata": metadata,
                    },
                )
            )
        elif scenario == "subscription_change":
            when = t + timedelta(hours=1 + 5 * rng.random())
            records.append(
                (
                    when,
                    {
                        "RecordType": "SubscriptionChange",
                        **base,
                        "ChangedAt": iso_s(when),
                        "Recipient": send.recipient,
                        "Origin": "Recipient",
                        "SuppressSending": True,
                        "SuppressionReason": "ManualSuppression",
                        "Tag": send.purpose,
                        "Metadata": metadata,
                    },
                )
            )
    return [Callback(when + secs(1 + rng.random() * 8), record) for when, record in records]


TWILIO_ACCOUNT = "AC6eede0a1c20800a68674b1dc0f10d74d"
TWILIO_SERVICE = "MG18f24c7042e35435984238ef4a317a04"
TWILIO_FROM = "+12025550100"
TWILIO_ERRORS = {
    "unreachable": ("undelivered", "30003"),
    "landline": ("undelivered", "30006"),
    "filtered": ("undelivered", "30007"),
    "unknown": ("undelivered", "30008"),
    "stop": ("failed", "21610"),
}


def twilio_calls(world: World, sends: list[Send]) -> list[Call]:
    rng = world.rng("twilio")
    url = f"{settings.NOTIFWATCH_BASE_URL}/hooks/twilio/"
    calls = []
    for send in sends:
        if send.provider != "twilio":
            continue
        for sid, at in send.accepted:
            for arrival, params in twilio_callbacks(send, sid, at, rng):
                if arrival >= world.now:
                    continue
                # One form-encoded callback per status change, signed like Twilio signs it.
                body = urlencode(params).encode()
                rejected = arrival in world.rejected
                token = TWILIO_ROTATED_TOKEN if rejected else TWILIO_TOKEN
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": "TwilioProxy/1.1",
                    "X-Twilio-Signature": twilio_signature(token, url, params),
                }
                call = Call(
                    "twilio", arrival, body, content_type=headers["Content-Type"], headers=headers
                )
                if rejected:
                    call.rejected = "signature mismatch"
                calls.append(call)
    return calls


def twilio_callbacks(
    send: Send, sid: str, at: datetime, rng: random.Random
) -> list[tuple[datetime, list[tuple[str, str]]]]:
    def params(status: str, error: str = "", done: datetime | None = None) -> list[tuple[str, str]]:
        fields = [
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", send.recipient),
            ("MessagingServiceSid", TWILIO_SERVICE),
            ("MessageSid", sid),
            ("AccountSid", TWILIO_ACCOUNT),
            ("From", TWILIO_FROM),
            ("ApiVersion", "2010-04-01"),
        ]
        if error:
            fields.append(("ErrorCode", error))
        if done:
            fields.insert(0, ("RawDlrDoneDate", done.astimezone(UTC).strftime("%y%m%d%H%M")))
        return fields

    scenario = send.downstream
    out: list[tuple[datetime, list[tuple[str, str]]]] = []
    t = at + secs(0.3 + rng.random())
    if rng.random() < 0.3:
        out.append((t, params("queued")))
    if scenario == "stop":
        out.append((t + secs(1), params(*TWILIO_ERRORS["stop"])))
        return out
    sent = t + secs(1 + 2 * rng.random())
    out.append((sent, params("sent")))
    done = sent + secs(4 + 50 * rng.random())
    if scenario in TWILIO_ERRORS:
        out.append((done, params(*TWILIO_ERRORS[scenario])))
    elif scenario != "no_dlr":
        out.append((done, params("delivered", done=done)))
        if scenario == "dup_callback":
            out.append((done + secs(2 + 10 * rng.random()), params("delivered", done=done)))
        elif scenario == "out_of_order":
            # The 'sent' callback is delayed and arrives after 'delivered'.
            out[-2] = (done + secs(15 + 40 * rng.random()), out[-2][1])
    return out


def twilio_signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# --- push-sender: FCM / APNs results (JSON lines, preset push_sender) -----------------------


@dataclass
class Push:
    at: datetime
    purpose: str
    customer: Customer
    refs: dict[str, str]
    form: str = "ok"
    scenario: str = "ok"
    notif_id: str = ""


def push_files(world: World, count: int) -> list[LogFile]:
    rng = world.rng("push")
    with_app = [c for c in world.customers if c.platform]
    weights = [w for *_, w in PUSH_PURPOSES]
    pushes = []
    for index in range(count):
        purpose, ref, _ = rng.choices(PUSH_PURPOSES, weights)[0]
        customer = rng.choice(with_app) if index > 1 else world.customers[7 + index]
        refs = {
            "order": {"order_id": f"ORD-{world.now.year}-{rng.randint(118000, 125000)}"},
            "ticket": {"ticket_id": f"TCK-{rng.randint(55000, 59999)}"},
            "product": {},
            "campaign": {},
        }[ref]
        push = Push(
            world.pick_time(rng, "evening"), purpose, customer, refs, form=missing_form(rng)
        )
        push.notif_id = f"ntf_PU{index + 1:06d}"
        pushes.append(push)
    assign(rng, [p for p in pushes if not p.customer.stale_token], PUSH_SCENARIOS, "scenario")
    for push in pushes:
        if push.scenario == "quota_pending":
            push.at = world.now - timedelta(minutes=8 + 12 * rng.random())
        elif push.scenario == "apns_unregistered":
            push.customer = world.pick_customer(rng, platform="ios", stale_token=False)
    entries = []
    for push in sorted(pushes, key=lambda p: p.at):
        for ts, record in push_results(push, rng):
            if shipped_at(ts) <= world.now:
                entries.append((ts, json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
    entries.sort()
    by_day: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for ts, text in entries:
        by_day[world.local(ts).date().isoformat()].append((ts, text))
    files = []
    for day in sorted(by_day):
        lines = [(n, text.encode(), None) for n, (_, text) in enumerate(by_day[day], start=1)]
        arrivals = {n: shipped_at(ts) for n, (ts, _) in enumerate(by_day[day], start=1)}
        files.append(LogFile("push-sender", f"push-results-{day}.jsonl", lines, arrivals))
    return files


FCM_ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Message rate exceeded for this device."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
}


def push_results(push: Push, rng: random.Random) -> list[tuple[datetime, dict]]:
    customer = push.customer
    provider = "fcm" if customer.platform == "android" else "apns"
    base = {
        "level": "info",
        "service": "push-sender",
        "event": "push.send_result",
        "channel": "push",
        "provider": provider,
        "platform": customer.platform,
        **customer_fields(customer.id, push.form),
        **push.refs,
        "template": push.purpose,
        "notif_id": push.notif_id,
        "idempotency_key": f"{push.notif_id}:push",
        "device_id": customer.device_id,
        "token_sha256_16": hashlib.sha256(customer.device_id.encode()).hexdigest()[:16],
    }

    def result(
        ts: datetime, attempt: int, outcome: str, http: int, response: dict, **extra
    ) -> tuple[datetime, dict]:
        level = {"accepted": "info", "retry_scheduled": "warn"}.get(outcome, "error")
        record = {
            "ts": iso(ts),
            **base,
            "level": level,
            "attempt": attempt,
            "http_status": http,
            "provider_response": response,
            "outcome": outcome,
            "duration_ms": rng.randint(60, 400),
            **extra,
        }
        if provider == "apns":
            record.update(
                apns_id=uuid4(rng).upper(), apns_topic="com.harborpine.shop", apns_push_type="alert"
            )
        return ts, record

    def accepted(ts: datetime, attempt: int) -> tuple[datetime, dict]:
        if provider == "fcm":
            name = f"projects/harborpine-shop/messages/0:{int(ts.timestamp() * 1000)}000%{hexs(rng, 16)}"
            return result(ts, attempt, "accepted", 200, {"name": name})
        return result(ts, attempt, "accepted", 200, {})

    def fcm_error(
        ts: datetime, attempt: int, code: str, outcome: str, **extra
    ) -> tuple[datetime, dict]:
        http, status, message = FCM_ERRORS[code]
        detail = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
        return result(
            ts,
            attempt,
            outcome,
            http,
            {"error": {"code": http, "message": message, "status": status, "details": detail}},
            **extra,
        )

    t = push.at
    if customer.stale_token:
        if provider == "fcm":
            return [fcm_error(t, 1, "UNREGISTERED", "failed")]
        return [result(t, 1, "failed", 400, {"reason": "BadDeviceToken"})]
    if push.scenario == "apns_unregistered" and provider == "apns":
        return [
            result(
                t,
                1,
                "failed",
                410,
                {"reason": "Unregistered", "timestamp": int(t.timestamp() * 1000)},
            )
        ]
    if push.scenario in ("quota_retry", "quota_pending", "unavailable_retry"):
        code = "UNAVAILABLE" if push.scenario == "unavailable_retry" else "QUOTA_EXCEEDED"
        wait = 10 if code == "UNAVAILABLE" else 60 if push.scenario == "quota_retry" else 1800
        if provider == "fcm":
            first = fcm_error(t, 1, code, "retry_scheduled", retry_after_s=wait)
        else:
            reason = "ServiceUnavailable" if code == "UNAVAILABLE" else "TooManyRequests"
            first = result(
                t,
                1,
                "retry_scheduled",
                503 if code == "UNAVAILABLE" else 429,
                {"reason": reason},
                retry_after_s=wait,
            )
        if push.scenario == "quota_pending":
            return [first]
        return [first, accepted(t + secs(wait + 2 * rng.random()), 2)]
    return [accepted(t, 1)]


# --- billing-api: canonical events posted as API batches ------------------------------------


@dataclass
class Message:
    """One notification of a canonical-JSON source."""

    at: datetime
    purpose: str
    channel: str
    customer: Customer
    key: str
    refs: dict[str, str]
    provider: str = ""
    form: str = "ok"
    scenario: str = "ok"

    @property
    def customer_id(self) -> str:
        return self.customer.id if self.form == "ok" else ""


class EventIds:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:07d}"


def billing_calls(world: World, count: int) -> list[Call]:
    rng = world.rng("billing")
    weights = [w for *_, w in BILLING_PURPOSES]
    business = [c for c in world.customers if c.company]
    messages: list[Message] = []
    invoice = 40000
    for _ in range(count):
        purpose, channel, _ = rng.choices(BILLING_PURPOSES, weights)[0]
        customer = rng.choice(business) if channel == "webhook" else world.pick_customer(rng)
        if len(messages) < 4:  # the household sharing one address gets its invoices too
            customer, channel, purpose = (
                world.customers[len(messages) % 2],
                "email",
                "invoice_issued",
            )
        if purpose == "invoice_issued" and rng.random() < 0.7:
            at = nightly_run(world, rng)
        else:
            at = world.pick_time(rng, "office")
        invoice += 1
        if purpose in ("renewal_notice", "usage_alert"):
            ref = {"subscription_id": f"SUB-{rng.randint(3000, 3999)}"}
            key = f"{ref['subscription_id'].lower()}:{purpose}:{channel}:{invoice}"
        else:
            ref = {"invoice_id": f"INV-{world.now.year}-{invoice:06d}"}
            key = f"{ref['invoice_id'].lower()}:{purpose}:{channel}"
        provider = {"email": "ses", "webhook": "http"}.get(channel, "")
        messages.append(
            Message(at, purpose, channel, customer, key, ref, provider, missing_form(rng))
        )
    emails = [m for m in messages if m.channel == "email"]
    assign(rng, emails, BILLING_EMAIL_SCENARIOS, "scenario")
    assign(
        rng, [m for m in messages if m.channel == "in_app"], BILLING_IN_APP_SCENARIOS, "scenario"
    )
    hooks = [m for m in messages if m.channel == "webhook"]
    assign(rng, hooks, BILLING_WEBHOOK_SCENARIOS, "scenario")
    down = [m for m in hooks if m.customer.company == DOWN_COMPANY and m.scenario == "ok"]
    if not any(m.at in world.webhook_down for m in down):
        for message in down[:2]:
            message.at = world.webhook_down.pick(rng)
    for message in messages:
        if (
            message.channel == "webhook"
            and message.customer.company == DOWN_COMPANY
            and message.at in world.webhook_down
        ):
            message.scenario = "endpoint_down"
        if message.scenario == "retrying_now":
            message.at = world.now - timedelta(minutes=40 + 60 * rng.random())
        if message.scenario == "unseen":
            message.at = world.now - timedelta(hours=20 + 100 * rng.random())
        if message.scenario == "delayed":
            message.at = world.now - timedelta(minutes=30 + 120 * rng.random())
    new_id = EventIds("bil_evt_")
    events = []
    for message in sorted(messages, key=lambda m: m.at):
        events += [(ts, e) for ts, e in billing_events(message, rng, new_id) if ts < world.now]
    calls = batch_calls(
        world, rng, "billing-api", events, minutes=60, transport=Transport.API, lines=False
    )
    # A new billing feature posted a status nobody mapped yet: the whole batch is quarantined.
    calls.append(billing_bad_batch(world, rng, new_id))
    return calls


def nightly_run(world: World, rng: random.Random) -> datetime:
    """The invoice run starts at 02:00 on weekdays."""
    runs = [local_window(world.now, world.tz, d, 2, 2.75) for d in range(DAYS + 1)]
    runs = [w for w in runs if w.start >= world.start and w.end <= world.now]
    runs = [w for w in runs if world.local(w.start).weekday() < 5] or runs
    return rng.choice(runs).pick(rng)


def canonical(message: Message, event_id: str, ts: datetime, status: str, **extra) -> dict:
    return compact(
        {
            "event_id": event_id,
            "occurred_at": iso(ts),
            "notification_key": message.key,
            "channel": message.channel,
            "purpose": message.purpose,
            "status": status,
            "customer_id": message.customer_id,
            "recipient": recipient_of(message),
            "refs": message.refs,
            "provider": message.provider,
            **extra,
        }
    )


def recipient_of(message: Message) -> str:
    if message.channel == "email":
        return message.customer.email
    if message.channel == "sms":
        return message.customer.phone
    if message.channel == "in_app":
        return f"inbox:{message.customer.id}"
    if message.channel == "webhook":
        account = message.customer.id.removeprefix("cus_")
        return f"https://erp.{message.customer.company}.example/hooks/billing/{account}"
    return message.customer.phone


def billing_events(
    message: Message, rng: random.Random, new_id: EventIds
) -> list[tuple[datetime, dict]]:
    t = message.at
    out: list[tuple[datetime, dict]] = []

    def add(ts: datetime, status: str, **extra) -> None:
        out.append((ts, canonical(message, new_id(), ts, status, **extra)))

    if message.channel == "email":
        ses_id = f"0100{hexs(rng, 12)}-{uuid4(rng)}-000000"
        add(t, "queued")
        add(t + secs(1 + rng.random()), "sent", provider_message_id=ses_id, attempt=1)
        done = t + secs(3 + 30 * rng.random())
        if message.scenario == "bounce":
            add(
                done,
                "bounced",
                provider_message_id=ses_id,
                error_code="Permanent/General",
                error_message=f"smtp; 550 5.1.1 <{message.customer.email}>... User unknown",
            )
        elif message.scenario == "too_large":
            add(
                done,
                "bounced",
                provider_message_id=ses_id,
                error_code="5.3.4",
                error_message="552 5.3.4 Message size exceeds fixed maximum message size (invoice PDF attached, 14 MB)",
            )
        elif message.scenario == "delayed":  # SES is still retrying
            add(
                done,
                "deferred",
                provider_message_id=ses_id,
                error_code="MailboxFull",
                error_message="452 4.2.2 The recipient's mailbox is full, delivery will be retried",
            )
        elif message.scenario == "mailbox_full":
            add(
                done + timedelta(hours=4),
                "bounced",
                provider_message_id=ses_id,
                error_code="Transient/MailboxFull",
                error_message="smtp; 552 5.2.2 Mailbox full",
            )
        else:
            add(done, "delivered", provider_message_id=ses_id)
            if rng.random() < 0.4:
                add(
                    done + timedelta(minutes=rng.expovariate(1 / 240)),
                    "opened",
                    provider_message_id=ses_id,
                )
            if message.scenario == "complaint":
                add(
                    done + timedelta(hours=8 + 20 * rng.random()),
                    "complained",
                    provider_message_id=ses_id,
                    error_code="abuse",
                    error_message="Complaint feedback type: abuse",
                )
    elif message.channel == "in_app":
        add(t, "sent")
        if message.scenario != "unseen":  # the customer has not opened the app since
            add(t + secs(0.5 + rng.random()), "delivered")
            if rng.random() < 0.45:
                add(t + timedelta(minutes=rng.expovariate(1 / 300)), "opened")
    else:  # webhook to a business customer's endpoint
        add(t, "sent", attempt=1)
        if message.scenario == "retry_ok":
            code, text = rng.choice(
                (
                    ("ETIMEDOUT", "POST timed out after 10000 ms"),
                    ("503", "HTTP 503 Service Unavailable"),
                )
            )
            add(t + secs(10), "deferred", attempt=1, error_code=code, error_message=text)
            add(t + secs(70 + rng.random() * 30), "delivered", attempt=2)
        elif message.scenario in ("endpoint_down", "retrying_now"):
            when = t + secs(1)
            gives_up = message.scenario == "endpoint_down"
            for attempt, wait in enumerate((60, 600, 3600, 14400), start=1):
                add(
                    when,
                    "deferred",
                    attempt=attempt,
                    error_code="ECONNREFUSED",
                    error_message=f"connect ECONNREFUSED {recipient_of(message)}",
                )
                when += secs(wait)
            if gives_up:
                add(
                    when,
                    "failed",
                    attempt=5,
                    error_code="ECONNREFUSED",
                    error_message="gave up after 5 attempts: connect ECONNREFUSED",
                )
        else:
            add(t + secs(0.2 + rng.random()), "delivered", attempt=1)
    return out


def billing_bad_batch(world: World, rng: random.Random, new_id: EventIds) -> Call:
    at = world.pick_time(rng, "office")
    customer = world.pick_customer(rng)
    invoice = f"INV-{world.now.year}-{rng.randint(90000, 99999):06d}"
    message = Message(
        at,
        "payment_receipt",
        "email",
        customer,
        f"{invoice.lower()}:payment_receipt:email",
        {"invoice_id": invoice},
        "ses",
    )
    events = [
        canonical(message, new_id(), at, "queued"),
        canonical(
            message,
            new_id(),
            at + secs(1),
            "sent",
            provider_message_id=f"0100{hexs(rng, 12)}-{uuid4(rng)}-000000",
        ),
        canonical(message, new_id(), at + secs(3), "paid"),
    ]
    arrived = at + timedelta(minutes=30)
    return Call(
        "billing-api",
        min(arrived, world.now - secs(1)),
        json.dumps(events).encode(),
        transport=Transport.API,
        headers={"Content-Type": "application/json", "User-Agent": "billing-api/4.2"},
    )


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


# --- support-desk: ticket updates, canonical JSON lines posted to its webhook ---------------


def support_calls(world: World, count: int) -> list[Call]:
    rng = world.rng("support")
    messages: list[Message] = []
    ticket = 55000
    while len(messages) < count:
        ticket += 1
        customer = world.pick_customer(rng)
        form = missing_form(rng)
        opened = world.pick_time(rng, "office")
        steps = [("ticket_received", "email", 0.0)]
        for reply in range(rng.choice((1, 1, 2, 3))):
            steps.append(("ticket_reply", "email", 2 + reply * 20 * rng.random()))
        if rng.random() < 0.35:
            steps.append(("ticket_update_sms", "sms", 1 + 10 * rng.random()))
        if rng.random() < 0.4:
            steps.append(("satisfaction_survey", "email", 48 + 24 * rng.random()))
        for seq, (purpose, channel, hours) in enumerate(steps, start=1):
            at = opened + timedelta(hours=hours)
            if at >= world.now:
                continue
            key = f"tck-{ticket}:{purpose}:{channel}:{seq}"
            provider = "twilio" if channel == "sms" else "mailgun"
            messages.append(
                Message(
                    at,
                    purpose,
                    channel,
                    customer,
                    key,
                    {"ticket_id": f"TCK-{ticket}"},
                    provider,
                    form,
                )
            )
    assign(
        rng,
        [m for m in messages if m.channel == "email" and m.at < world.now - timedelta(hours=30)],
        SUPPORT_SCENARIOS,
        "scenario",
    )
    assign(rng, [m for m in messages if m.channel == "sms"], SUPPORT_SMS_SCENARIOS, "scenario")
    new_id = EventIds("sd-")
    events = []
    for message in sorted(messages, key=lambda m: m.at):
        t = message.at
        sent_id = (
            f"<{hexs(rng, 20)}@helpdesk.harborpine.example>"
            if message.channel == "email"
            else "SM" + hexs(rng, 32)
        )
        batch = [(t, canonical(message, new_id(), t, "sent", provider_message_id=sent_id))]
        done = t + secs(3 + 40 * rng.random())
        if message.scenario == "bounce":
            batch.append(
                (
                    done,
                    canonical(
                        message,
                        new_id(),
                        done,
                        "bounced",
                        provider_message_id=sent_id,
                        error_code="550",
                        error_message=f"550 5.1.1 <{message.customer.email}>: Recipient address rejected: User unknown",
                    ),
                )
            )
        elif message.scenario == "unreachable":
            batch.append(
                (
                    done,
                    canonical(
                        message,
                        new_id(),
                        done,
                        "undelivered",
                        provider_message_id=sent_id,
                        error_code="30003",
                        error_message="Unreachable destination handset",
                    ),
                )
            )
        elif message.scenario != "no_outcome":
            batch.append(
                (done, canonical(message, new_id(), done, "delivered", provider_message_id=sent_id))
            )
            if message.channel == "email" and rng.random() < 0.3:
                seen = done + timedelta(minutes=rng.expovariate(1 / 90))
                batch.append(
                    (
                        seen,
                        canonical(message, new_id(), seen, "opened", provider_message_id=sent_id),
                    )
                )
        events += [(ts, e) for ts, e in batch if ts < world.now]
    calls = batch_calls(
        world,
        rng,
        "support-desk",
        events,
        minutes=120,
        transport=Transport.WEBHOOK,
        lines=True,
        user_agent="Zapier",
    )
    extra = []
    for call in calls:
        if call.arrived in world.token_mixup:
            # Posted with a stale bearer token (rejected), then again after the fix an hour later.
            extra.append(
                Call(
                    call.slug,
                    call.arrived,
                    call.body,
                    transport=call.transport,
                    content_type=call.content_type,
                    headers=call.headers,
                    rejected="missing or wrong bearer token",
                )
            )
            call.arrived = world.token_mixup.end + timedelta(minutes=20 + 10 * rng.random())
    # The iPaaS timed out waiting for one answer and posted the same batch again.
    if calls:
        again = rng.choice(calls)
        extra.append(
            Call(
                again.slug,
                again.arrived + secs(30),
                again.body,
                transport=again.transport,
                content_type=again.content_type,
                headers=again.headers,
            )
        )
    return calls + extra


# --- crm-csv: a daily spreadsheet export of reminders and campaigns -------------------------

CRM_COLUMNS = (
    "event_id occurred_at notification_key channel purpose status attempt customer_id "
    "recipient refs.contract_id refs.campaign_id provider provider_message_id error_code "
    "error_message"
).split()


def crm_files(world: World, count: int) -> list[LogFile]:
    rng = world.rng("crm")
    weights = [w for *_, w in CRM_PURPOSES]
    campaign_days = [
        local_window(world.now, world.tz, 5, 10, 10.75),
        local_window(world.now, world.tz, 1, 10, 10.75),
    ]
    messages: list[Message] = []
    for index in range(count):
        purpose, channel, provider, _ = rng.choices(CRM_PURPOSES, weights)[0]
        customer = world.pick_customer(rng)
        if purpose == "spring_sale_campaign":
            at = rng.choice(campaign_days).pick(rng)
            refs = {"campaign_id": "CMP-SPRING-25"}
        else:
            at = world.pick_time(rng, "office")
            refs = {"contract_id": f"CTR-{rng.randint(7000, 8999)}"}
        key = f"crm-{index + 1:06d}:{purpose}:{channel}"
        messages.append(
            Message(at, purpose, channel, customer, key, refs, provider, missing_form(rng))
        )
    emails = [m for m in messages if m.channel == "email"]
    assign(rng, emails, CRM_SCENARIOS, "scenario")
    assign(
        rng,
        [m for m in emails if m.purpose == "spring_sale_campaign"],
        CRM_CAMPAIGN_SCENARIOS,
        "scenario",
    )
    assign(rng, [m for m in messages if m.channel == "other"], CRM_WHATSAPP_SCENARIOS, "scenario")
    rows_by_day: dict[str, list[list[str]]] = defaultdict(list)
    seq = 0
    for message in sorted(messages, key=lambda m: m.at):
        msg_id = f"crm-msg-{hexs(rng, 12)}"
        t = message.at
        done = t + secs(5 + 60 * rng.random())
        rows = [(t, "sent", "", "")]
        if message.scenario == "bounce":
            rows.append(
                (
                    done,
                    "bounced",
                    "5.1.1",
                    "550 5.1.1 Recipient address rejected: mailbox unavailable",
                )
            )
        elif message.scenario == "unsubscribed":
            rows = [(t, "suppressed", "", "")]  # the CRM skipped an unsubscribed contact
        elif message.scenario == "no_outcome":
            pass  # the CRM never got a delivery report back
        elif message.scenario == "undeliverable":
            rows.append(
                (
                    done,
                    "failed",
                    "131026",
                    "Message undeliverable: recipient cannot receive WhatsApp messages",
                )
            )
        else:
            rows.append((done, "delivered", "", ""))
            if message.scenario == "complaint":
                rows.append((done + timedelta(hours=2 + 10 * rng.random()), "complained", "", ""))
        for ts, status, code, text in rows:
            seq += 1
            row = {
                "event_id": f"crm-evt-{seq:07d}",
                "occurred_at": iso_s(ts),
                "notification_key": message.key,
                "channel": message.channel,
                "purpose": message.purpose,
                "status": status,
                "attempt": "1",
                "customer_id": message.customer_id,
                "recipient": message.customer.email
                if message.channel == "email"
                else message.customer.phone,
                "refs.contract_id": message.refs.get("contract_id", ""),
                "refs.campaign_id": message.refs.get("campaign_id", ""),
                "provider": message.provider,
                "provider_message_id": msg_id,
                "error_code": code,
                "error_message": text,
            }
            rows_by_day[world.local(ts).date().isoformat()].append([row[c] for c in CRM_COLUMNS])
    files = []
    previous: list[list[str]] = []
    days = sorted(rows_by_day)
    broken_day = days[len(days) // 2] if days else ""
    for day in days:
        exported = datetime.combine(
            datetime.fromisoformat(day).date() + timedelta(days=1), time(6, 0), tzinfo=world.tz
        ).astimezone(UTC)
        if exported > world.now:
            continue  # today's export has not run yet
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CRM_COLUMNS)
        # The export window overlaps the previous day by a few rows (re-imported, deduplicated).
        for row in previous[-3:] + rows_by_day[day]:
            writer.writerow(row)
        text = buffer.getvalue()
        if day == broken_day:
            text += crm_broken_rows(world, rng, day)
        previous = rows_by_day[day]
        lines = list(csv_lines(io.BytesIO(text.encode())))
        files.append(
            LogFile(
                "crm-csv",
                f"crm-reminders-{day}.csv",
                lines,
                {},
                default_arrival=exported + secs(40),
            )
        )
    return files


def crm_broken_rows(world: World, rng: random.Random, day: str) -> str:
    customer = world.pick_customer(rng)
    date_ = datetime.fromisoformat(day)
    # An unquoted comma in a campaign name, and a date typed the local way.
    return (
        f"crm-evt-9{rng.randint(100000, 999999)},{day}T11:04:00Z,crm-x1:renewal_reminder:email,email,"
        f"renewal_reminder,delivered,1,{customer.id},{customer.email},CTR-7001,Spring, 2nd wave,brevo,"
        f"crm-msg-{hexs(rng, 12)},,\n"
        f"crm-evt-9{rng.randint(100000, 999999)},{date_:%d/%m/%Y} 11:20,crm-x2:renewal_reminder:email,email,"
        f"renewal_reminder,delivered,1,{customer.id},{customer.email},CTR-7002,,brevo,"
        f"crm-msg-{hexs(rng, 12)},,\n"
    )


# ---------------------------------------------------------------------------------------------
# Loading the plan through the ingest code
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    new_raw_events: int = 0
    new_notifications: int = 0
    new_delivery_events: int = 0


def ensure_users():
    from django.contrib.auth import get_user_model

    from notifwatch.accounts.models import Membership

    user_model = get_user_model()
    users = {}
    for username, password, role in DEMO_USERS:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            # The demo admin may also open Django's admin (which needs staff status).
            is_admin = role == "admin"
            user = user_model.objects.create_user(
                username=username, password=password, is_staff=is_admin, is_superuser=is_admin
            )
        if not Membership.objects.filter(user=user).exists():
            Membership.objects.create(user=user, role=role)
        users[username] = user
    return users


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


def reset_demo_data() -> None:
    """Delete every notification, raw event and source (audit entries stay: they are append-only)."""
    with transaction.atomic():
        DeliveryEvent.objects.all().delete()
        NotificationRef.objects.all().delete()
        Notification.objects.all().delete()
        RawEvent.objects.all().delete()
        Source.objects.all().delete()


def load_plan(plan: Plan) -> LoadResult:
    before = (RawEvent.objects.count(), Notification.objects.count(), DeliveryEvent.objects.count())
    sources = ensure_sources()
    for spec in SOURCES:
        source = sources[spec.slug]
        with transaction.atomic():
            for log_file in (f for f in plan.files if f.slug == spec.slug):
                import_lines(source, iter(log_file.lines), log_file.name)
                backdate_import(source, log_file)
            calls = sorted((c for c in plan.calls if c.slug == spec.slug), key=lambda c: c.arrived)
            post_calls(source, calls)
            backdate_events(source)
    after = (RawEvent.objects.count(), Notification.objects.count(), DeliveryEvent.objects.count())
    return LoadResult(*(a - b for a, b in zip(after, before, strict=True)))


def unseen(source: Source, calls: list[Call]) -> list[Call]:
    """Calls whose body is not stored yet, counting repeats: a body posted twice is kept twice."""
    stored = Counter(
        RawEvent.objects.filter(source=source)
        .exclude(transport=Transport.IMPORT)
        .values_list("content_hash", flat=True)
    )
    fresh = []
    for call in calls:
        digest = hashlib.sha256(call.body).hexdigest()
        if stored[digest] > 0:
            stored[digest] -= 1
        else:
            fresh.append(call)
    return fresh


# Twilio posts one callback per status change of each message: thousands of calls in a demo
# week. process_raw_event records each on its own, for a fixed ~4 ms of queries, which alone
# would take the full demo past 40 s; these are interpreted one by one just the same, and their
# events recorded together (see process_callbacks).
BATCHED_KINDS = frozenset({"twilio"})
CALLBACK_BATCH = 200


def post_calls(source: Source, calls: list[Call]) -> None:
    """Each HTTP call stored with store_raw, then processed as the API and webhook views do:
    canonical batches by the source's mapping, provider webhooks by the source kind's adapter
    (which joins callbacks to the send records that logged the same provider message id).

    Authentication is the views' job and is skipped here: the plan already knows which calls a
    view would refuse (a Twilio signature made with a rotated token); those are stored as
    rejected and never interpreted, as the view does. Good for seeding, not for real traffic.
    """
    stored: list[tuple[RawEvent, datetime]] = []
    waiting: list[RawEvent] = []
    for call in unseen(source, calls):
        raw = store_raw(
            source,
            call.transport,
            call.body,
            content_type=call.content_type,
            headers=call.headers,
            outcome=Outcome.REJECTED if call.rejected else Outcome.RECEIVED,
            reason=call.rejected,
        )
        stored.append((raw, call.arrived))
        if call.rejected:
            continue
        # Adapters read the arrival time (a Twilio callback has no time of its own): give them
        # the back-dated one, which set_arrivals then stores.
        raw.received_at = call.arrived
        if source.kind in BATCHED_KINDS:
            waiting.append(raw)
            if len(waiting) >= CALLBACK_BATCH:
                process_callbacks(source, waiting)
                waiting = []
        else:
            process_raw_event(raw)
    if waiting:
        process_callbacks(source, waiting)
    # process_raw_event and process_callbacks set outcome and event_count on the raw events.
    set_arrivals([(raw.pk, at, raw.outcome, raw.event_count) for raw, at in stored])


def process_callbacks(source: Source, raws: list[RawEvent]) -> None:
    """process_raw_event for a run of raw events, with their events recorded in one batch.

    Each raw event is interpreted on its own by its source kind's adapter (interpret_raw, as
    process_raw_event does), and gets the outcome process_raw_event would give it: quarantined
    (by process_raw_event itself), parsed, duplicate (every event already recorded) or ignored.
    record_events joins the callbacks to their send records by provider message id either way.
    Outcomes and counts of parsed and duplicate ones are written by post_calls' set_arrivals.
    """
    found = []
    for raw in raws:
        try:
            interpretation = interpret_raw(raw)
        except BodyProblem:
            interpretation = None
        if interpretation is None or interpretation.problems:
            process_raw_event(raw)  # quarantines it, with process_raw_event's own reason
            continue
        found.append((raw, interpretation))
    record_events(source.pk, [p for _, interpretation in found for p in interpretation.pending])
    new = dict(
        DeliveryEvent.objects.filter(raw_event_id__in=[raw.pk for raw, _ in found])
        .values("raw_event_id")
        .annotate(n=Count("id"))
        .values_list("raw_event_id", "n")
    )
    for raw, interpretation in found:
        if interpretation.pending:
            raw.event_count = new.get(raw.pk, 0)
            raw.outcome = Outcome.PARSED if raw.event_count else Outcome.DUPLICATE
        else:
            reason = "; ".join(sorted(set(interpretation.ignored)))[:500]
            finish(raw, Outcome.IGNORED, reason=reason)


def set_arrivals(rows: list[tuple[int, datetime, str, int]]) -> None:
    """(id, arrived, outcome, event_count) per raw event, in one statement run many times:
    bulk_update builds a CASE per row and is far slower at demo sizes."""
    if not rows:
        return
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {quote(RawEvent._meta.db_table)} SET {quote('received_at')} = %s, "
        f"{quote('processed_at')} = %s, {quote('outcome')} = %s, {quote('event_count')} = %s "
        f"WHERE {quote('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            sql, [(adapt(at), adapt(at), outcome, count, pk) for pk, at, outcome, count in rows]
        )


def backdate_import(source: Source, log_file: LogFile) -> None:
    """Import lines arrived when the shipper sent them, not when this command ran."""
    rows = RawEvent.objects.filter(
        source=source, transport=Transport.IMPORT, import_name=log_file.name
    ).values_list("id", "line_number", "received_at", "outcome", "event_count")
    changed = []
    for pk, line_number, received_at, outcome, count in rows:
        when = log_file.arrivals.get(line_number) or log_file.default_arrival
        if when and received_at != when:
            changed.append((pk, when, outcome, count))
    set_arrivals(changed)


def backdate_events(source: Source) -> None:
    """Delivery events were received with their raw event; notifications began with their first."""
    arrival = RawEvent.objects.filter(pk=OuterRef("raw_event_id")).values("received_at")[:1]
    DeliveryEvent.objects.filter(source=source, raw_event__isnull=False).update(
        received_at=Subquery(arrival)
    )
    Notification.objects.filter(source=source, first_event_at__isnull=False).exclude(
        created_at=F("first_event_at")
    ).update(created_at=F("first_event_at"))


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def summary_lines() -> list[str]:
    total = Notification.objects.count()
    lines = []
    per_source = dict(
        Notification.objects.values("source__slug")
        .annotate(n=Count("id"))
        .values_list("source__slug", "n")
    )
    lines.append(
        f"Sources ({Source.objects.count()}): "
        + ", ".join(
            f"{s.slug} {per_source.get(s.slug, 0):,}" for s in Source.objects.order_by("slug")
        )
    )
    by_status = Counter(
        dict(
            Notification.objects.values("final_status")
            .annotate(n=Count("id"))
            .values_list("final_status", "n")
        )
    )
    lines.append(
        f"Notifications ({total:,}): "
        + ", ".join(
            f"{status} {n:,} ({100 * n / max(total, 1):.1f}%)"
            for status, n in by_status.most_common()
        )
    )
    categories = Counter(
        dict(
            Notification.objects.exclude(reason_category="")
            .values("reason_category")
            .annotate(n=Count("id"))
            .values_list("reason_category", "n")
        )
    )
    lines.append("Reasons: " + ", ".join(f"{c} {n:,}" for c, n in categories.most_common()))
    failures = Notification.objects.filter(counts_as_failure=True).count()
    dup_sends = Notification.objects.filter(duplicate_sends__gt=0).count()
    dup_events = Notification.objects.filter(duplicate_events__gt=0).count()
    no_customer = Notification.objects.exclude(identity_problem="").count()
    lines.append(
        f"Counted as failures {failures:,}; duplicate sends {dup_sends:,}; repeated provider "
        f"events on {dup_events:,}; no customer id {no_customer:,}"
    )
    raws = Counter(
        dict(RawEvent.objects.values("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
    )
    lines.append("Raw events: " + ", ".join(f"{o} {n:,}" for o, n in raws.most_common()))
    reasons = Counter(
        dict(
            RawEvent.objects.filter(outcome__in=[Outcome.QUARANTINED, Outcome.REJECTED])
            .values("reason")
            .annotate(n=Count("id"))
            .values_list("reason", "n")
        )
    )
    for reason, n in reasons.most_common(6):
        lines.append(f"  {n:>5} × {reason[:100]}")
    return lines
