import pytest

from notifwatch.accounts.models import Team
from tests.exceptions.data import bounced_order_confirmations


@pytest.fixture
def teams(db) -> dict[str, Team]:
    return {name: Team.objects.create(name=name) for name in ("Billing", "CRM admins", "Platform")}


@pytest.fixture
def bounced(json_source):
    """Order confirmations bounced for three customers; cus_2 got it by SMS anyway."""
    return bounced_order_confirmations(json_source)
