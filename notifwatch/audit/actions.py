"""Writing audit entries; called only from action functions, inside their transaction."""

from typing import Any

from notifwatch.audit.models import AuditEntry


def actor_label(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def record_audit(
    *,
    actor,
    action: str,
    target,
    old: Any = None,
    new: Any = None,
    detail: str = "",
    system_label: str = "system",
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor_label(actor) if actor is not None else system_label,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_label=str(target)[:255],
        old=old,
        new=new,
        detail=detail,
    )
