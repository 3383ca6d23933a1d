"""The importer's reading of broken archives and its batches with bad lines, without the command."""

import gzip
import json
import zlib

import pytest

from notifwatch.deliveries.models import DeliveryEvent, Notification
from notifwatch.ingest.importer import FileProblem, import_path, jsonl_lines, open_input
from notifwatch.ingest.models import Outcome, RawEvent


def lines_of(path) -> list:
    with open_input(str(path)) as stream:
        return list(jsonl_lines(stream))


def test_it_reads_concatenated_gzip_members_as_one_file(tmp_path):
    path = tmp_path / "appended.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n') + gzip.compress(b'{"a": 3}\n'))

    assert lines_of(path) == [
        (1, b'{"a": 1}', None),
        (2, b'{"a": 2}', None),
        (3, b'{"a": 3}', None),
    ]


def test_it_reads_every_line_before_garbage_and_calls_the_archive_damaged(tmp_path):
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n') + b"this is not gzip")

    *lines, problem = lines_of(path)

    assert lines == [(1, b'{"a": 1}', None), (2, b'{"a": 2}', None)]
    assert isinstance(problem, FileProblem)
    assert problem.message.startswith("the gzip file is damaged after line 2 (")


def test_it_reads_every_line_inflated_before_a_damaged_byte(tmp_path):
    original = b"".join(
        b'{"n": %d, "check": "%08x"}\n' % (n, n * 2654435761 % 2**32) for n in range(3000)
    )
    packed = bytearray(gzip.compress(original))
    damaged_at = len(packed) // 2
    packed[damaged_at] ^= 0xFF
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(bytes(packed))
    # The lines wholly inflated from the bytes before the damage cannot have been touched by it.
    intact = zlib.decompressobj(wbits=31).decompress(bytes(packed[:damaged_at])).count(b"\n")

    *lines, problem = lines_of(path)

    assert intact > 1000
    assert [line for _, line, _ in lines[:intact]] == original.splitlines()[:intact]
    assert problem.message.startswith("the gzip file is damaged after line ")


def test_it_calls_a_plain_file_named_gz_damaged_before_its_first_line(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(b'{"a": 1}\n')

    [problem] = lines_of(path)

    assert problem.message.startswith("the gzip file is damaged after line 0")


def canonical(event_id: str, key: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": "2025-03-14T10:00:00Z",
            "notification_key": key,
            "channel": "sms",
            "status": "delivered",
            "recipient": "+14155550100",
        }
    )


@pytest.mark.django_db
def test_it_quarantines_every_conflicting_line_of_a_batch_and_records_the_others_once(
    json_source, tmp_path
):
    stored = tmp_path / "first.jsonl"
    stored.write_text("\n".join(canonical(f"e-{n}", f"k-{n}") for n in range(30)))
    import_path(json_source, str(stored))
    # Each odd line resends a stored event id under a corrected key; each even one is new.
    resend = tmp_path / "corrected.jsonl"
    resend.write_text(
        "\n".join(
            line
            for n in range(30)
            for line in (canonical(f"e-{n}", f"k-{n}-fixed"), canonical(f"new-{n}", f"n-{n}"))
        )
    )

    summary = import_path(json_source, str(resend), batch_size=16)

    assert (summary.read, summary.stored, summary.duplicates) == (60, 30, 0)
    assert [problem.line for problem in summary.quarantined] == list(range(1, 60, 2))
    assert all("event_id" in problem.reason for problem in summary.quarantined)
    assert DeliveryEvent.objects.count() == 60
    assert Notification.objects.filter(duplicate_events__gt=0).count() == 0
    assert RawEvent.objects.filter(outcome=Outcome.QUARANTINED).count() == 30
    assert import_path(json_source, str(resend), batch_size=16).duplicates == 60
