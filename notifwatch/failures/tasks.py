"""Background work of the failures app, run by the django-tasks database worker."""

from django.contrib.auth import get_user_model
from django_tasks import TaskContext, task

from notifwatch.audit.actions import actor_label
from notifwatch.audit.models import AuditEntry
from notifwatch.failures import bulk


@task(takes_context=True)
def apply_bulk_in_background(
    context: TaskContext,
    querystring: str,
    change: dict,
    comment: str,
    actor_id: int,
    expected: int,
    digest: str,
    ids: list[int] | None,
) -> dict:
    """A bulk change too big to finish within a web request (bulk.apply_bulk_run).

    If the set changed between the confirmation and this run, nothing is changed and the
    audit trail says so: the person who asked sees it there, not in a failed task. A run whose
    worker was killed is requeued under the same task id and resumes where it stopped.
    """
    actor = get_user_model().objects.get(pk=actor_id)
    try:
        outcome = bulk.apply_bulk_run(
            f"task-{context.task_result.id}",
            querystring,
            bulk.Change.from_record(change, comment),
            actor=actor,
            expected=expected,
            digest=digest,
            ids=ids,
        )
    except bulk.SetChanged as changed:
        AuditEntry.objects.create(
            actor=actor,
            actor_label=actor_label(actor),
            action=f"exception.bulk_{change['verb']}_abandoned",
            target_type="exception_set",
            target_id="selection" if ids is not None else "filter",
            target_label=f"{expected} exceptions matching {querystring}"[:255],
            new={"filter": querystring, "confirmed": expected, "found": changed.preview.count},
            detail="The matching exceptions changed before the background run: nothing changed.",
        )
        return {"abandoned": True, "confirmed": expected, "found": changed.preview.count}
    return {
        "matched": outcome.matched,
        "changed": outcome.changed,
        "unchanged": outcome.unchanged,
        "gone": outcome.gone,
        "audit_entry": outcome.audit.pk,
    }
