import pytest


@pytest.fixture
def log_in(page, live_server):
    """Log in through the real form, as a person would."""

    def log_in_as(user) -> None:
        page.goto(live_server.url + "/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill("pw-" + user.username)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(live_server.url + "/")

    return log_in_as
