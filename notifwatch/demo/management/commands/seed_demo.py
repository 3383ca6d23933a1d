import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from notifwatch.audit.actions import record_audit
from notifwatch.audit.models import AuditEntry
from notifwatch.demo.loading import load_plan, reset_demo_data
from notifwatch.demo.owners import ensure_owner_rules, make_first_decisions
from notifwatch.demo.plan import DEFAULT_SEED, DEFAULT_SIZE, MIN_SIZE, build_plan, default_now
from notifwatch.demo.sources import DEMO_SLUGS
from notifwatch.demo.subscriptions import ensure_subscriptions
from notifwatch.demo.summary import summary_lines
from notifwatch.demo.users import ensure_users
from notifwatch.failures.detection import run_checks
from notifwatch.failures.models import FailureGroup
from notifwatch.ingest.models import Source

SEEDED = "demo.seeded"


class Command(BaseCommand):
    help = (
        "Load a deterministic week of demo notification traffic through the real ingest paths. "
        "Re-running adds nothing; --reset wipes notifications, raw events and sources first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, help=f"random seed (default {DEFAULT_SEED})")
        parser.add_argument(
            "--now",
            help="ISO 8601 end of the demo week (default: the current hour, or the anchor of "
            "the previous seed_demo run while its data is still loaded)",
        )
        parser.add_argument(
            "--notifications",
            type=int,
            help=f"about how many notifications (default {DEFAULT_SIZE})",
        )
        parser.add_argument("--reset", action="store_true", help="wipe existing data first")

    def handle(self, seed, now, notifications, reset, **options):
        started = time.monotonic()
        if reset:
            reset_demo_data()
            self.stdout.write("Reset: notifications, raw events and sources deleted.")
        previous = None if reset else previous_run()
        seed = seed if seed is not None else previous.get("seed") if previous else None
        size = notifications or (previous.get("notifications") if previous else None)
        anchor = parse_now(now) if now else None
        if anchor is None and previous:
            anchor = datetime.fromisoformat(previous["now"])
            self.stdout.write(
                f"Demo data already loaded for the week ending {previous['now']}; reusing that "
                "anchor (use --reset for a fresh week)."
            )
        seed = DEFAULT_SEED if seed is None else seed
        size = size or DEFAULT_SIZE
        if size < MIN_SIZE:
            raise CommandError(f"--notifications must be at least {MIN_SIZE}")
        anchor = anchor or default_now()

        users = ensure_users()
        ensure_owner_rules()
        ensure_subscriptions(users)
        plan = build_plan(seed, anchor, size)
        result = load_plan(plan)
        if result.new_raw_events:
            record_audit(
                actor=None,
                action=SEEDED,
                target=users["demo"],
                new={"seed": seed, "now": plan.now.isoformat(), "notifications": size},
                system_label="manage.py seed_demo",
            )
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Demo week ending {plan.now.isoformat()} (seed {seed}, size {size:,}): added "
            f"{result.new_notifications:,} notifications, {result.new_delivery_events:,} events, "
            f"{result.new_raw_events:,} raw events in {elapsed:.1f}s."
        )
        for line in summary_lines():
            self.stdout.write(line)
        # The first detection pass, so the exceptions are there before the worker's first tick.
        checks = run_checks(now=plan.now)
        decided = make_first_decisions(users["reviewer"])
        open_count = FailureGroup.objects.open_for_review().count()
        self.stdout.write(
            f"Exceptions: {open_count} open after a detection pass "
            f"({', '.join(f'{kind} {n}' for kind, n in checks.items() if n)}); "
            f"{decided} first decisions by the reviewer."
        )
        self.stdout.write("Log in as demo / demo-password (admin); also reviewer, viewer, auditor.")


def previous_run() -> dict | None:
    """The anchor of the last seed run, while its sources still exist."""
    if not Source.objects.filter(slug__in=DEMO_SLUGS).exists():
        return None
    entry = AuditEntry.objects.filter(action=SEEDED).order_by("-at", "-id").first()
    return entry.new if entry and isinstance(entry.new, dict) and "now" in entry.new else None


def parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"--now {value!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
