"""The demo's world: its customers, the week's clock and rhythm, and the incidents in it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from notifwatch.demo.formats import hexs

DAYS = 7
# How often a generator draws again for a customer, order or ticket not yet used for a message of
# that kind. In a very large demo all may be used: then a repeat beats an endless loop.
REDRAWS = 50
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


@dataclass
class Customer:
    id: str
    email: str
    phone: str
    platform: str  # android, ios or "" (no app)
    device_id: str
    stale_token: bool = False
    company: str = ""  # business accounts get billing webhooks
    # A customer who changed their email address during the week: the address before.
    former_email: str = ""
    moved_at: datetime | None = None

    def email_at(self, moment: datetime) -> str:
        """The address on file at that moment: every sender had the new one from the change."""
        if self.moved_at and moment < self.moved_at:
            return self.former_email
        return self.email


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
    # Who placed each order and opened each ticket, as the shop and the support desk recorded
    # them: the push sender notifies about those same orders and tickets, to their owners, so an
    # order lookup finds one customer across every sender.
    orders: dict[str, Customer] = field(default_factory=dict)
    tickets: dict[str, Customer] = field(default_factory=dict)
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


def customer_number(customer: Customer) -> int:
    """0 for the first customer (cus_10001), 1 for the next, ..."""
    return int(customer.id.removeprefix("cus_")) - 10001


def subscription_id(customer: Customer) -> str:
    """Each customer's one subscription: billing's renewal notices and usage alerts cite it."""
    return f"SUB-{3001 + customer_number(customer)}"


def contract_id(customer: Customer) -> str:
    """Each customer's one contract: the CRM's renewal reminders cite it."""
    return f"CTR-{7001 + customer_number(customer)}"


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
    customers = build_customers(rng, max(150, min(3000, size // 8)))
    # One customer changed their email address three days ago, at 9:00 their time.
    customers[3].moved_at = local_window(now, tz, 3, 9, 10).start
    return World(
        seed=seed,
        now=now,
        size=size,
        tz=tz,
        customers=customers,
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
    # One customer moved to another mail provider: same name, another domain.
    local_part, _, domain = customers[3].email.partition("@")
    former = f"{local_part}@{'example.org' if domain != 'example.org' else 'example.com'}"
    customers[3].former_email = former if former not in seen else f"{local_part}.old@{domain}"
    for index, platform in ((7, "android"), (8, "ios")):
        customers[index].platform = platform
        customers[index].device_id = customers[index].device_id or f"dev_{hexs(rng, 10)}"
        customers[index].stale_token = True
    customers[2].company = DOWN_COMPANY
    return customers


def calm_time(world: World, rng: random.Random, low_hours: float, high_hours: float) -> datetime:
    """A moment `low_hours`..`high_hours` ago outside every incident window."""
    while True:
        moment = world.now - timedelta(hours=low_hours + (high_hours - low_hours) * rng.random())
        if world.calm(moment):
            return moment


def corporate(world: World, rng: random.Random) -> Customer:
    pool = [c for c in world.customers if c.email.endswith("@" + CORPORATE_DOMAIN)]
    return rng.choice(pool)
