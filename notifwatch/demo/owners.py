"""The demo's owners and first decisions, so `make demo` shows a review in progress."""

from datetime import timedelta

from django.utils import timezone

from notifwatch.accounts.models import Team
from notifwatch.failures.actions import add_note, assign, set_status, snooze
from notifwatch.failures.models import FailureGroup, GroupHistory, Kind, OwnerRule, Status

TEAMS = ("Engineering", "CRM admins", "Mobile app", "Support leads")
# (position, team, matching fields): the first match routes a new exception.
RULES = (
    (10, "Engineering", {"kind": Kind.MAPPING_BREAK}),
    (20, "Engineering", {"kind": Kind.REJECTED_WEBHOOKS}),
    (30, "Engineering", {"kind": Kind.SILENCE}),
    (40, "Engineering", {"kind": Kind.DUPLICATE_SEND}),
    (50, "CRM admins", {"kind": Kind.IDENTITY}),
    (60, "Mobile app", {"channel": "push"}),
    (70, "CRM admins", {"fix_owner": "recipient_data"}),
    (80, "Engineering", {"fix_owner": "our_setup"}),
    (90, "Engineering", {"fix_owner": "provider"}),
    (100, "Support leads", {"kind": Kind.LATE, "channel": "email"}),
)


def ensure_owner_rules() -> None:
    """Teams and routing rules, created once (before the first detection pass routes by them)."""
    teams = {name: Team.objects.get_or_create(name=name)[0] for name in TEAMS}
    if OwnerRule.objects.exists():
        return
    for position, team, fields in RULES:
        OwnerRule.objects.create(position=position, team=teams[team], **fields)


def make_first_decisions(reviewer) -> int:
    """A few decisions by the reviewer, once: some owned, one accepted, one snoozed."""
    if GroupHistory.objects.filter(actor=reviewer).exists():
        return 0
    open_groups = FailureGroup.objects.open_for_review().order_by(
        "-customers_not_reached", "-occurrences", "id"
    )
    decided = 0
    biggest = open_groups.filter(kind=Kind.DELIVERY_FAILURE).first()
    if biggest:
        assign(biggest, assignee=reviewer, actor=reviewer)
        add_note(
            biggest,
            "Checking with the CRM team whether these addresses came from the March import.",
            actor=reviewer,
        )
        decided += 1
    marketing_late = open_groups.filter(kind=Kind.LATE).exclude(purpose__icontains="otp").last()
    if marketing_late:
        set_status(
            marketing_late,
            Status.ACCEPTED,
            actor=reviewer,
            comment="Expected: these go out in a nightly batch.",
        )
        decided += 1
    rate_limited = open_groups.filter(fix_owner="provider").first()
    if rate_limited:
        snooze(
            rate_limited,
            timezone.now() + timedelta(days=7),
            wake_at_occurrences=rate_limited.occurrences * 2 + 5,
            actor=reviewer,
            comment="Provider throttling during the sale; look again next week.",
        )
        decided += 1
    return decided
