import pytest

from notifwatch.deliveries.models import Notification


@pytest.fixture
def retried(imported) -> Notification:
    """Failed twice (503, then a timeout), delivered on the 3rd attempt."""
    return imported("01_retry_503_timeout_then_delivered.jsonl").get()
