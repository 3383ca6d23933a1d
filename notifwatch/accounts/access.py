"""Who may open what: one decorator every view starts with."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifwatch.accounts.models import Membership, Role

READ_ROLES = (Role.ADMIN, Role.REVIEWER, Role.VIEWER, Role.AUDITOR)


def membership_of(user) -> Membership | None:
    if not user.is_authenticated:
        return None
    try:
        return user.membership
    except Membership.DoesNotExist:
        return None


def sees_personal_data(user) -> bool:
    membership = membership_of(user)
    return bool(membership and membership.sees_personal_data)


def role_required(*roles: str) -> Callable:
    """Login first; then 403 unless the user's role is one of `roles`."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_of(request.user)
            if membership is None or membership.role not in roles:
                needed = " or ".join(Role(role).label.lower() for role in roles)
                return render(
                    request,
                    "accounts/forbidden.html",
                    {"membership": membership, "needed": needed},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
