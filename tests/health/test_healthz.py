"""GET /healthz: 200 when every part is ok, 503 naming the failing parts, JSON when asked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail

from notifwatch.alerts.models import Alert, AlertKind, AlertStatus

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_it_answers_200_when_healthy(client, healthy):
    response = client.get("/healthz")

    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines[0] == "ok"
    assert lines[1] == "database: ok — the database answers"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "database",
        "worker",
        "detection",
        "ingest",
        "alerts",
    ]
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_answers_503_naming_a_stopped_worker(client, worker_stopped):
    response = client.get("/healthz")

    assert response.status_code == 503
    text = response.content.decode()
    assert text.startswith("failing\n")
    assert (
        "worker: failing — no worker heartbeat for 9 minutes (is `manage.py run_worker` running?)"
        in text
    )
    assert "detection: failing — detection has not run for 9 minutes" in text
    assert "database: ok" in text


def test_it_answers_503_for_a_worker_never_seen(client, db):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert "worker: failing — no worker has ever sent a heartbeat" in response.content.decode()


@pytest.mark.parametrize(
    "url, headers",
    [("/healthz?format=json", {}), ("/healthz", {"HTTP_ACCEPT": "application/json"})],
)
def test_it_answers_json_when_asked(client, worker_stopped, url, headers):
    response = client.get(url, **headers)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "failing"
    assert body["parts"]["database"] == {"ok": True, "reason": "the database answers"}
    assert body["parts"]["worker"]["ok"] is False
    assert body["parts"]["worker"]["workers_alive"] == 0
    assert body["parts"]["ingest"]["ok"] is True


def test_json_when_healthy(client, healthy):
    response = client.get("/healthz?format=json")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert all(part["ok"] for part in response.json()["parts"].values())


def test_a_load_balancer_may_ask_for_the_database_only(client, worker_stopped):
    response = client.get("/healthz?part=database")

    assert response.status_code == 200
    assert response.content.decode() == "ok\ndatabase: ok — the database answers\n"


def test_it_needs_no_login_and_refuses_a_post(client, healthy):
    assert client.get("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_a_stopped_worker_alerts_from_the_web_side_once(client, worker_stopped, health_subscriber):
    for _ in range(3):
        assert client.get("/healthz").status_code == 503

    worker_alerts = Alert.objects.filter(kind=AlertKind.HEALTH, key__startswith="health:worker:")
    assert worker_alerts.count() == 1
    # Sent from the request: the delivery job would run in the stopped worker.
    assert worker_alerts.get().status == AlertStatus.SENT
    subjects = [message.subject for message in mail.outbox]
    assert subjects.count("notifwatch needs attention: worker is failing") == 1
    assert "no worker heartbeat for 9 minutes" in mail.outbox[0].body


def test_a_worker_never_seen_alerts_nobody_from_the_web_side(client, db, health_subscriber):
    client.get("/healthz")

    assert not Alert.objects.exists()


def test_it_answers_503_naming_the_database_when_it_is_down():
    # A separate process with a database that cannot be opened: nothing of this test's own.
    code = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/healthz?format=json'); print(r.status_code); print(r.content.decode())"
    )
    env = {
        **os.environ,
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "notifwatch.settings",
        "DATABASE_URL": "sqlite:////nonexistent-dir/notifwatch.sqlite3",
        "ALLOWED_HOSTS": "testserver",
    }

    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    status, body = out.stdout.split("\n", 1)
    assert status == "503", out.stderr
    assert json.loads(body) == {
        "status": "failing",
        "checked_at": json.loads(body)["checked_at"],
        "parts": {
            "database": {
                "ok": False,
                "reason": "the database does not answer",
                "error": "OperationalError",
            }
        },
    }
