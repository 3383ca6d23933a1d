"""The red banner on every signed-in page when notifwatch itself needs attention.

Read on every page, so it is cheap: two small queries (the parts the worker noted failing, and
the newest worker heartbeat), cached for BANNER_SECONDS per process, and only when a page
shows it. The worker's noted parts are at most a minute old; a stopped worker notes nothing,
so then the web side checks every part itself and raises the alarm (alerting).
"""

from datetime import datetime

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from notifwatch.health.alerting import alert_if_worker_stopped
from notifwatch.health.checks import PARTS, check_health, check_worker
from notifwatch.health.models import PartState

BANNER_SECONDS = 30
BANNER_CACHE_KEY = "notifwatch:health-banner"
LEAD = "notifwatch itself needs attention: "


def health_banner(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"health_banner": SimpleLazyObject(cached_banner)}


def cached_banner() -> str:
    text = cache.get(BANNER_CACHE_KEY)
    if text is None:
        text = banner_text()
        cache.set(BANNER_CACHE_KEY, text, BANNER_SECONDS)
    return text


def banner_text(now: datetime | None = None) -> str:
    """'' when healthy, else 'notifwatch itself needs attention: ' and each failing part's words."""
    now = now or timezone.now()
    worker = check_worker(now)
    if not worker.ok and worker.figures.get("last_seen_at") is not None:
        health = check_health(now)
        alert_if_worker_stopped(health)
        reasons = [part.reason for part in health.failing]
    else:
        # The worker's own state is read live above; the rest as the worker last noted them.
        noted = dict(
            PartState.objects.filter(failing_since__isnull=False)
            .exclude(part="worker")
            .values_list("part", "reason")
        )
        reasons = ([] if worker.ok else [worker.reason]) + [
            noted[name] for name in PARTS if noted.get(name)
        ]
    return LEAD + "; ".join(reasons) if reasons else ""
