import pytest

from notifwatch.api.tokens import create_token


@pytest.fixture
def bearer(db):
    """The headers of a fresh API token of `user` (made as the page makes it)."""

    def headers(user) -> dict[str, str]:
        issued = create_token(user, "tests", actor=user)
        return {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}

    return headers


@pytest.fixture
def api_get(client, bearer):
    """GET an API address as `user` (through a token of theirs); the answer, checked for 200
    unless `expect` says otherwise."""

    def get(url: str, user, *, expect: int = 200, **params):
        response = client.get(url, params, **bearer(user))
        assert response.status_code == expect, response.content
        return response.json()

    return get


@pytest.fixture
def bounced(json_source):
    """Order confirmations bounced for three customers; cus_2 got it by SMS anyway."""
    from tests.exceptions.data import bounced_order_confirmations

    return bounced_order_confirmations(json_source)
