"""Alert subscriptions in the app: each user's own, and (for admins) each team's."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required
from notifwatch.accounts.models import Role, Team
from notifwatch.alerts.actions import (
    SavedSubscription,
    create_subscription,
    remove_subscription,
    secret_hint,
    send_test_alert,
    update_subscription,
)
from notifwatch.alerts.forms import SubscriptionForm
from notifwatch.alerts.models import Alert, AlertStatus, Subscription

RECENT_ALERTS = 20


class NotYours(Exception):
    """A team's subscription asked for by someone who is not an admin."""


def subscription_for(user, pk: int) -> Subscription:
    """The subscription if `user` may manage it: their own, or any team's for an admin.

    Another user's subscription is a 404 (it says nothing about who subscribed to what).
    """
    subscription = get_object_or_404(Subscription.objects.select_related("user", "team"), pk=pk)
    if subscription.user_id == user.pk:
        return subscription
    if subscription.team_id is not None:
        if membership_of(user).role == Role.ADMIN:
            return subscription
        raise NotYours
    raise Http404("No such subscription.")


@role_required(*READ_ROLES)
def alerts(request: HttpRequest) -> HttpResponse:
    """The signed-in user's subscriptions, a form to add one, and their recent alerts."""
    subscriptions = Subscription.objects.filter(user=request.user)
    is_admin = membership_of(request.user).role == Role.ADMIN
    form = SubscriptionForm(
        request.POST if request.method == "POST" else None, may_post_urls=is_admin
    )
    if request.method == "POST" and form.is_valid():
        saved = create_subscription(actor=request.user, user=request.user, **form.cleaned_data)
        return after_save(request, saved, "Subscription added.")
    return render(
        request,
        "alerts/subscriptions.html",
        page_context(subscriptions, form, teams=Team.objects.all() if is_admin else None),
    )


@role_required(Role.ADMIN)
def alerts_team(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id)
    subscriptions = Subscription.objects.filter(team=team)
    form = SubscriptionForm(request.POST if request.method == "POST" else None, for_team=True)
    if request.method == "POST" and form.is_valid():
        saved = create_subscription(actor=request.user, team=team, **form.cleaned_data)
        return after_save(request, saved, f"Subscription added for {team}.")
    return render(
        request, "alerts/subscriptions.html", page_context(subscriptions, form, team=team)
    )


@role_required(*READ_ROLES)
def alert_subscription(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit one subscription; its buttons also remove it or send it a test alert."""
    try:
        subscription = subscription_for(request.user, pk)
    except NotYours:
        return render(
            request,
            "accounts/forbidden.html",
            {"membership": membership_of(request.user), "needed": "admin"},
            status=403,
        )
    for_team = subscription.team_id is not None
    back = ("alerts_team", subscription.team_id) if for_team else ("alerts",)
    action = request.POST.get("action", "save") if request.method == "POST" else None
    if action == "remove":
        remove_subscription(subscription, actor=request.user)
        messages.success(request, "Subscription removed.")
        return redirect(*back)
    if action == "test":
        alert = send_test_alert(subscription, actor=request.user)
        if alert.status == AlertStatus.SENT:
            messages.success(request, "Test alert sent.")
        else:
            messages.error(request, f"The test alert could not be sent: {alert.last_error}")
        return redirect("alert_subscription", pk=subscription.pk)
    form = SubscriptionForm(
        request.POST if action == "save" else None,
        initial=initial_of(subscription),
        for_team=for_team,
        may_post_urls=membership_of(request.user).role == Role.ADMIN,
    )
    if action == "save" and form.is_valid():
        saved = update_subscription(subscription, actor=request.user, **form.cleaned_data)
        return after_save(request, saved, "Subscription saved.")
    return render(
        request,
        "alerts/subscription_edit.html",
        {
            "subscription": subscription,
            "form": form,
            "hint": secret_hint(subscription.secret),
            "recent": recent_alerts(Subscription.objects.filter(pk=subscription.pk)),
        },
    )


def initial_of(subscription: Subscription) -> dict:
    fields = ("kind", "channel", "target", "timing", "scope", "digest_weekday", "digest_hour")
    return {name: getattr(subscription, name) for name in fields} | {
        "is_active": subscription.is_active
    }


def after_save(request: HttpRequest, saved: SavedSubscription, notice: str) -> HttpResponse:
    """Redirect to the subscription; a generated secret is shown once instead, never cached."""
    if saved.new_secret is None:
        messages.success(request, notice)
        return redirect("alert_subscription", pk=saved.subscription.pk)
    subscription = saved.subscription
    response = render(
        request,
        "alerts/subscription_edit.html",
        {
            "subscription": subscription,
            "form": SubscriptionForm(
                initial=initial_of(subscription), for_team=subscription.team_id is not None
            ),
            "hint": secret_hint(subscription.secret),
            "new_secret": saved.new_secret,
            "notice": notice,
            "recent": [],
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def recent_alerts(subscriptions) -> list[Alert]:
    return list(
        Alert.objects.filter(subscription__in=subscriptions)
        .select_related("subscription")
        .order_by("-created_at", "-pk")[:RECENT_ALERTS]
    )


def page_context(subscriptions, form, *, team=None, teams=None) -> dict:
    subscriptions = list(subscriptions.order_by("kind", "channel", "pk"))
    for subscription in subscriptions:
        subscription.hint = secret_hint(subscription.secret)
    return {
        "subscriptions": subscriptions,
        "form": form,
        "team": team,
        "teams": teams,
        "recent": recent_alerts(subscriptions),
    }
