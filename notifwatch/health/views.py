"""GET /healthz: for load balancers and outside monitors, no login."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from notifwatch.health.alerting import alert_if_worker_stopped
from notifwatch.health.checks import PARTS, check_health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when every part is ok, else 503 naming the failing ones; JSON when asked.

    `?part=database` (repeatable) checks only the parts named: "is the web server up" for a
    load balancer that must not take a server out because the worker stopped.
    """
    asked = [name for name in request.GET.getlist("part") if name in PARTS]
    health = check_health(parts=asked or None)
    alert_if_worker_stopped(health)
    status = 200 if health.ok else 503
    if request.GET.get("format") == "json" or "application/json" in request.headers.get(
        "Accept", ""
    ):
        return JsonResponse(health.as_json(), status=status)
    return HttpResponse(health.as_text(), status=status, content_type="text/plain; charset=utf-8")
