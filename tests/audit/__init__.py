"""Helpers shared by the export tests: data always goes in through the real importer."""

import csv
import io
import json
from pathlib import Path

from notifwatch.ingest.importer import import_path

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"

RETRY_KEY = "ord-119001:order_confirmation:email"
UNREGISTERED_KEY = "ntf_PU0002"
NO_CUSTOMER_EMAIL_KEY = "ord-119033:order_shipped:email"
NO_CUSTOMER_SMS_KEY = "tck-55190:ticket_update_sms:sms"
NO_CUSTOMER_PUSH_KEY = "ord-119040:out_for_delivery_push:push"

FORMULA = '=HYPERLINK("http://x","y")'


def import_samples(inhouse_source, push_source) -> None:
    """Retry-then-delivered, missing-customer (in-house log) and FCM unregistered (push)."""
    import_files(inhouse_source, "inhouse/01_retry_503_timeout_then_delivered.jsonl")
    import_files(inhouse_source, "inhouse/03_missing_customer_id.jsonl")
    import_files(push_source, "push/02_fcm_unregistered_404.json")


def import_files(source, *names: str) -> None:
    for name in names:
        summary = import_path(source, str(FIXTURES / name))
        assert not summary.quarantined, summary.quarantined


def inhouse_line(**changes) -> dict:
    """A line of the in-house sender log (the delivered attempt of the retry sample), changed."""
    sample = FIXTURES / "inhouse" / "01_retry_503_timeout_then_delivered.jsonl"
    line = json.loads(sample.read_text().splitlines()[2])
    line.update(changes)
    return line


def import_lines(source, directory: Path, name: str, lines: list[dict]) -> None:
    path = directory / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    summary = import_path(source, str(path))
    assert summary.stored == len(lines), summary


def many_notifications(count: int) -> list[dict]:
    return [
        inhouse_line(
            idempotency_key=f"bulk-{n:05d}:order_confirmation:email",
            order_id=f"ORD-BULK-{n:05d}",
            customer_id=f"cus_{n:05d}",
            recipient={"email": f"bulk{n}@example.com"},
            ts=f"2025-04-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
        )
        for n in range(count)
    ]


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def parse_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


def by_key(records: list[dict]) -> dict[str, dict]:
    return {record["notification_key"]: record for record in records}
