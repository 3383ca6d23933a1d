"""Two workers detecting the same problem at once create one exception."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifwatch.failures import grouping
from notifwatch.failures.grouping import Problem, record_problems
from notifwatch.failures.models import FailureGroup, Fingerprint, HistoryKind, Kind, Occurrence


def silent_hours(first: int, last: int) -> list[Problem]:
    top = timezone.now().replace(minute=0, second=0, microsecond=0)
    return [
        Problem(
            kind=Kind.SILENCE,
            fingerprint="silence|race",
            title="Shop sender: nothing received",
            occurred_at=top - timedelta(hours=n),
            subject=f"shop:{n}",
        )
        for n in range(first, last + 1)
    ]


@pytest.mark.django_db(transaction=True)
def test_two_workers_recording_one_fingerprint_create_one_exception(monkeypatch):
    both_looked = threading.Barrier(2)
    # PostgreSQL runs both transactions at once: the second worker's fingerprint insert waits
    # on the first's unique key, then fails and finds its exception. SQLite serialises
    # writers; its in-memory test database reports a lock instead of waiting (no busy
    # timeout in shared-cache mode), so the two write phases take turns here as a file
    # database's busy timeout would make them.
    turns = threading.Lock() if connection.vendor == "sqlite" else None
    held = threading.local()
    real_atomic = grouping.transaction.atomic

    class RacingTransaction:
        @staticmethod
        def atomic(*args, **kwargs):
            # First called once a worker has looked the fingerprint up and found nothing;
            # later calls (its occurrences' transaction) run as they are.
            if not getattr(held, "looked", False):
                held.looked = True
                both_looked.wait(timeout=10)
                if turns is not None:
                    turns.acquire()
                    held.turn = True
            return real_atomic(*args, **kwargs)

    monkeypatch.setattr(grouping, "transaction", RacingTransaction)
    created: list[int] = []
    real_route_owner = grouping.route_owner

    def route_owner(group, *, rule):
        # Only the worker whose insert won routes the new exception.
        created.append(group.pk)
        real_route_owner(group, rule=rule)

    monkeypatch.setattr(grouping, "route_owner", route_owner)
    errors: list[BaseException] = []

    def worker(problems: list[Problem]) -> None:
        try:
            record_problems(problems, rule="race test")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            both_looked.abort()
        finally:
            if getattr(held, "turn", False):
                turns.release()
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(silent_hours(1, 3),)),
        threading.Thread(target=worker, args=(silent_hours(3, 5),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert both_looked.n_waiting == 0 and not both_looked.broken
    group = FailureGroup.objects.get()
    assert created == [group.pk]
    assert Fingerprint.objects.get().group == group
    assert sorted(Occurrence.objects.values_list("subject", flat=True)) == [
        f"shop:{n}" for n in range(1, 6)
    ]
    assert group.history.filter(kind=HistoryKind.CREATED).count() == 1
    group.refresh_from_db()
    assert group.occurrences == 5
