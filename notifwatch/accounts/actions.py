"""Every change to users, roles and preferences goes through these functions.

Each writes its AuditEntry in the same transaction, and only when something changed. Passwords
never reach an audit entry: `user.password_set` says that one was set, and how, nothing more.
"""

import secrets
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from notifwatch.accounts.models import Membership, Role, Team
from notifwatch.audit.actions import record_audit
from notifwatch.audit.models import AuditEntry

LAST_ADMIN = (
    "{user} is the last active admin. Make another user an admin first, "
    "so someone can still manage users and sources."
)


class AccountError(ValueError):
    """A change refused for a reason an admin can read; `field` names the form field concerned."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class CreatedUser:
    user: object
    generated_password: str | None  # shown once to the admin, never stored in clear


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def team_names(teams: Iterable[Team]) -> list[str]:
    return sorted(team.name for team in teams)


def create_user(
    *,
    username: str,
    role: str,
    actor,
    email: str = "",
    teams: Iterable[Team] = (),
    personal_data_granted: bool = False,
    password: str | None = None,
) -> CreatedUser:
    """Create an active user with a role; a password is generated when none is given."""
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}.", field="role")
    check_grant(role, personal_data_granted)
    generated = None if password else generate_password()
    teams = list(teams)
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=username, email=email, password=password or generated
            )
            Membership.objects.create(
                user=user, role=role, personal_data_granted=personal_data_granted
            )
            user.teams.set(teams)
            record_audit(
                actor=actor,
                action="user.created",
                target=user,
                new={
                    "username": user.get_username(),
                    "email": user.email,
                    "role": role,
                    "personal_data_granted": personal_data_granted,
                    "teams": team_names(teams),
                    "is_active": user.is_active,
                },
                detail="password generated" if generated else "password chosen by the admin",
            )
    except IntegrityError as exc:
        # The form checks first; this is the race where two admins pick the same name at once.
        raise AccountError("A user with that username already exists.", field="username") from exc
    return CreatedUser(user=user, generated_password=generated)


def change_role(user, role: str, *, actor) -> Membership:
    """Give `user` a role; leaving auditor also drops the personal-data grant."""
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}.", field="role")
    with transaction.atomic():
        membership = locked_membership(user)
        old = membership.role if membership else None
        if old == role:
            return membership
        if old == Role.ADMIN and membership.user.is_active:
            ensure_another_admin(membership.user, field="role")
        if membership is None:
            membership = Membership.objects.create(user=user, role=role)
        else:
            membership.role = role
            membership.save(update_fields=["role"])
        record_audit(
            actor=actor,
            action="user.role_changed",
            target=user,
            old={"role": old},
            new={"role": role},
        )
        if role != Role.AUDITOR and membership.personal_data_granted:
            set_personal_data_grant(user, False, actor=actor)
            membership.refresh_from_db()
    return membership


def set_personal_data_grant(user, granted: bool, *, actor) -> Membership:
    """Let an auditor see recipients unmasked (admins and reviewers always do; viewers never)."""
    with transaction.atomic():
        membership = locked_membership(user)
        if membership is None:
            raise AccountError("This user has no role yet.", field="role")
        if granted:
            check_grant(membership.role, granted)
        old = membership.personal_data_granted
        if old == granted:
            return membership
        membership.personal_data_granted = granted
        membership.save(update_fields=["personal_data_granted"])
        record_audit(
            actor=actor,
            action="user.personal_data_changed",
            target=user,
            old={"personal_data_granted": old},
            new={"personal_data_granted": granted},
        )
    return membership


def set_teams(user, teams: Iterable[Team], *, actor) -> list[str]:
    teams = list(teams)
    with transaction.atomic():
        locked_membership(user)
        old = team_names(user.teams.all())
        new = team_names(teams)
        if old != new:
            user.teams.set(teams)
            record_audit(
                actor=actor,
                action="user.teams_changed",
                target=user,
                old={"teams": old},
                new={"teams": new},
            )
    return new


def set_active(user, active: bool, *, actor):
    """Deactivate instead of deleting: the user's audit trail keeps pointing at them."""
    with transaction.atomic():
        membership = locked_membership(user)
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        if user.is_active == active:
            return user
        if not active and membership and membership.role == Role.ADMIN:
            ensure_another_admin(user, field="is_active")
        user.is_active = active
        user.save(update_fields=["is_active"])
        record_audit(
            actor=actor,
            action="user.reactivated" if active else "user.deactivated",
            target=user,
            old={"is_active": not active},
            new={"is_active": active},
        )
    return user


def set_password(user, password: str | None = None, *, actor) -> str | None:
    """Set `password`, or a generated one which is returned (to be shown once)."""
    generated = None if password else generate_password()
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        user.set_password(password or generated)
        user.save(update_fields=["password"])
        record_audit(
            actor=actor,
            action="user.password_set",
            target=user,
            detail="password generated" if generated else "password chosen by the admin",
        )
    return generated


def update_user(
    user,
    *,
    role: str,
    personal_data_granted: bool,
    teams: Iterable[Team],
    is_active: bool,
    actor,
) -> None:
    """Apply the edit page in one transaction: a refused part leaves everything as it was."""
    with transaction.atomic():
        change_role(user, role, actor=actor)
        set_personal_data_grant(user, personal_data_granted, actor=actor)
        set_teams(user, teams, actor=actor)
        set_active(user, is_active, actor=actor)


def set_time_zone(user, zone: str, *, actor) -> Membership:
    """The zone dates are shown in for `user`; "" means the server's TIME_ZONE."""
    if zone and not is_known_zone(zone):
        raise AccountError(f"Unknown time zone {zone!r}.", field="time_zone")
    with transaction.atomic():
        membership = locked_membership(user)
        if membership is None:
            raise AccountError("This user has no role yet.", field="time_zone")
        old = membership.time_zone
        if old != zone:
            membership.time_zone = zone
            membership.save(update_fields=["time_zone"])
            record_audit(
                actor=actor,
                action="user.time_zone_changed",
                target=user,
                old={"time_zone": old},
                new={"time_zone": zone},
            )
    return membership


@cache
def known_zones() -> frozenset[str]:
    """IANA zone names this server knows (listing them reads the disk: once per process)."""
    # "localtime" is the host's own file and "Factory" renders as "-00": neither is a place.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def is_known_zone(zone: str) -> bool:
    return zone in known_zones()


def check_grant(role: str, granted: bool) -> None:
    if granted and role != Role.AUDITOR:
        raise AccountError(
            "Only auditors can be granted personal data: admins and reviewers see it anyway, "
            "viewers never do.",
            field="personal_data_granted",
        )


def locked_membership(user) -> Membership | None:
    """Lock the active admins, then `user`'s membership and user row.

    The admins are locked first and always in the same order, so two admins demoting or
    deactivating each other at once queue up instead of both seeing "another admin remains"
    (or deadlocking). SQLite needs none of this: its IMMEDIATE transactions run one at a time.
    """
    list(
        Membership.objects.select_for_update()
        .filter(role=Role.ADMIN, user__is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return Membership.objects.select_for_update().select_related("user").filter(user=user).first()


def ensure_another_admin(user, *, field: str) -> None:
    others = (
        Membership.objects.filter(role=Role.ADMIN, user__is_active=True).exclude(user=user).exists()
    )
    if not others:
        raise AccountError(LAST_ADMIN.format(user=user.get_username()), field=field)


# --- signing in (written by notifwatch.accounts.signin, django-axes' handler) ---

SIGNED_IN, SIGN_IN_FAILED, LOCKED_OUT = "user.login", "user.login_failed", "user.locked_out"
# Events, not changes to the user: the user page's "Recent changes" leaves them out.
SIGN_IN_ACTIONS = (SIGNED_IN, SIGN_IN_FAILED, LOCKED_OUT)


def record_sign_in(user, address: str | None) -> AuditEntry:
    return record_audit(actor=user, action=SIGNED_IN, target=user, new={"ip": address})


def record_failed_sign_in(username: str, address: str | None) -> AuditEntry:
    """A failed sign-in: the username tried (it may name no user) and the address."""
    return record_sign_in_problem(SIGN_IN_FAILED, username, {"ip": address})


def record_lockout(
    username: str, address: str | None, *, failures: int, minutes: int
) -> AuditEntry:
    """Sign-in for this username from this address is refused for `minutes`."""
    return record_sign_in_problem(
        LOCKED_OUT,
        username,
        {"ip": address, "failures": failures, "minutes": minutes},
        system_label="system: login throttling",
    )


def record_sign_in_problem(
    action: str, username: str, new: dict, *, system_label: str = "anonymous"
) -> AuditEntry:
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first() if username else None
    return AuditEntry.objects.create(
        actor=None,
        actor_label=system_label,
        action=action,
        target_type=User._meta.label_lower,
        target_id=str(user.pk) if user else "",
        # What was typed, even when it names no user: that is the trail of an attack.
        target_label=username[:255],
        new={"username": username, **new},
    )
