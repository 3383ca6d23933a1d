import pytest

from tests.alerts.receiver import Receiver


@pytest.fixture
def receiver():
    """Start a local receiver: receiver(answers=[500, 200], secret="whsec_...")."""
    started = []

    def start(**options) -> Receiver:
        started.append(Receiver(**options))
        return started[-1]

    yield start
    for server in started:
        server.close()
