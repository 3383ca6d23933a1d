"""Every setting the README documents is read from the environment, and means what it says."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS = (ROOT / "notifwatch" / "settings.py").read_text()
# Variables the README names for the tools around the app, not for the app itself.
NOT_APP_SETTINGS = {"NOTIFWATCH_CHROMIUM", "PYTEST_ARGS"}


def documented_settings() -> set[str]:
    paragraph = README.split("Settings (environment variables):", 1)[1].split("\n\n", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", paragraph))
    names |= set(re.findall(r"`(NOTIFWATCH_[A-Z0-9_]+)`", README))
    return names - NOT_APP_SETTINGS


def read_from_environment(name: str) -> bool:
    if name == "DATABASE_URL":
        return "dj_database_url.config(" in SETTINGS  # it reads DATABASE_URL itself
    reader = r"(environ(\.get)?[\[(]\s*|env_bool\(\s*|env_list\(\s*)"
    return bool(re.search(rf"""{reader}["']{name}["']""", SETTINGS))


def test_every_documented_setting_is_read_from_the_environment():
    names = documented_settings()

    assert len(names) > 20  # the paragraph was found
    assert sorted(n for n in names if not read_from_environment(n)) == []


def test_silence_schedules_come_from_the_environment_as_json():
    schedules = {"crm": {"days": [0, 1, 2, 3, 4], "hours": [9, 17]}}
    env = {
        **os.environ,
        "DEBUG": "1",
        "NOTIFWATCH_SILENCE_SCHEDULES": json.dumps(schedules),
        "DJANGO_SETTINGS_MODULE": "notifwatch.settings",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.NOTIFWATCH_SILENCE_SCHEDULES))"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    assert json.loads(out) == schedules
