import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse
# database access from test code that runs beside it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHROMIUM = os.environ.get("NOTIFWATCH_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium), "
            "or NOTIFWATCH_CHROMIUM=/path/to/chromium."
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher costs ~0.3 s per user; tests create a cast of users each time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fixture_path():
    def path(*parts: str) -> Path:
        return FIXTURES.joinpath(*parts)

    return path


def make_user(django_user_model, username: str, role: str | None, **membership):
    from notifwatch.accounts.models import Membership

    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if role:
        Membership.objects.create(user=user, role=role, **membership)
    return user


@pytest.fixture
def admin_user(django_user_model):
    return make_user(django_user_model, "alice", "admin")


@pytest.fixture
def reviewer(django_user_model):
    return make_user(django_user_model, "rita", "reviewer")


@pytest.fixture
def viewer(django_user_model):
    return make_user(django_user_model, "victor", "viewer")


@pytest.fixture
def auditor(django_user_model):
    return make_user(django_user_model, "audrey", "auditor")


@pytest.fixture
def no_role_user(django_user_model):
    return make_user(django_user_model, "nobody", None)


@pytest.fixture
def json_source(db):
    from notifwatch.ingest.actions import save_source

    saved = save_source(slug="billing", kind="json", name="Billing sender")
    saved.source.token = saved.new_token
    return saved.source


@pytest.fixture
def inhouse_source(db):
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.presets import load_preset

    saved = save_source(slug="inhouse", kind="json", mapping=load_preset("inhouse_log"))
    saved.source.token = saved.new_token
    return saved.source


@pytest.fixture
def push_source(db):
    from notifwatch.ingest.actions import save_source
    from notifwatch.ingest.presets import load_preset

    saved = save_source(slug="push", kind="json", mapping=load_preset("push_sender"))
    return saved.source


@pytest.fixture
def imported(inhouse_source, fixture_path):
    """Import in-house log files by name; return the notifications of the source."""
    from notifwatch.deliveries.models import Notification
    from notifwatch.ingest.importer import import_path

    def load(*names: str):
        for name in names:
            import_path(inhouse_source, str(fixture_path("inhouse", name)))
        return Notification.objects.filter(source=inhouse_source)

    return load
