"""Users and roles, managed by admins in the app; each user's own preferences."""

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from notifwatch.accounts.access import READ_ROLES, membership_of, role_required
from notifwatch.accounts.actions import (
    SIGN_IN_ACTIONS,
    AccountError,
    create_user,
    set_password,
    set_time_zone,
    update_user,
)
from notifwatch.accounts.forms import (
    EditUserForm,
    NewUserForm,
    PreferencesForm,
    SetPasswordForm,
)
from notifwatch.accounts.models import Role
from notifwatch.audit.models import AuditEntry

RECENT_CHANGES = 20


@role_required(Role.ADMIN)
def user_list(request: HttpRequest) -> HttpResponse:
    users = list(
        get_user_model()
        .objects.select_related("membership")
        .prefetch_related("teams")
        .order_by("-is_active", "username")
    )
    for user in users:
        user.member = membership_of(user)
    return render(request, "accounts/user_list.html", {"users": users})


@role_required(Role.ADMIN)
def user_new(request: HttpRequest) -> HttpResponse:
    form = NewUserForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = create_user(
                username=data["username"],
                email=data["email"],
                role=data["role"],
                personal_data_granted=data["personal_data_granted"],
                teams=data["teams"],
                password=form.password,
                actor=request.user,
            )
        except AccountError as exc:
            form.add_error(exc.field, exc.message)
        else:
            notice = f"User {created.user.get_username()} created."
            if created.generated_password:
                return show_password_once(request, created.user, created.generated_password, notice)
            messages.success(request, notice)
            return redirect("user_edit", pk=created.user.pk)
    return render(request, "accounts/user_new.html", {"form": form})


@role_required(Role.ADMIN)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model().objects.select_related("membership"), pk=pk)
    form = password_form = None
    if request.method == "POST" and request.POST.get("form") == "password":
        password_form = SetPasswordForm(request.POST, user=user)
        if password_form.is_valid():
            generated = set_password(user, password_form.password, actor=request.user)
            if user.pk == request.user.pk:
                # A new password ends every session of its user: keep this one.
                user.refresh_from_db()
                update_session_auth_hash(request, user)
            notice = f"New password set for {user.get_username()}."
            if generated:
                return show_password_once(request, user, generated, notice)
            messages.success(request, notice)
            return redirect("user_edit", pk=user.pk)
    elif request.method == "POST":
        form = EditUserForm(request.POST, initial=edit_initial(user))
        if form.is_valid():
            try:
                update_user(user, actor=request.user, **form.cleaned_data)
            except AccountError as exc:
                form.add_error(exc.field, exc.message)
            else:
                messages.success(request, f"{user.get_username()} saved.")
                data = form.cleaned_data
                if user.pk == request.user.pk and (
                    data["role"] != Role.ADMIN or not data["is_active"]
                ):
                    return redirect("home")  # they handed their own admin role over
                return redirect("user_edit", pk=user.pk)
    return render(request, "accounts/user_edit.html", edit_context(user, form, password_form))


def edit_initial(user) -> dict:
    membership = membership_of(user)
    return {
        "role": membership.role if membership else None,
        "personal_data_granted": bool(membership and membership.personal_data_granted),
        "teams": list(user.teams.all()),
        "is_active": user.is_active,
    }


def edit_context(user, form=None, password_form=None, **extra) -> dict:
    entries = AuditEntry.objects.filter(
        target_type=user._meta.label_lower, target_id=str(user.pk)
    ).exclude(action__in=SIGN_IN_ACTIONS)[:RECENT_CHANGES]
    changes = [
        (entry, ACTION_WORDS.get(entry.action, entry.action), change_words(entry))
        for entry in entries
    ]
    return {
        "subject": user,
        "subject_membership": membership_of(user),
        "form": form or EditUserForm(initial=edit_initial(user)),
        "password_form": password_form or SetPasswordForm(user=user),
        "changes": changes,
    } | extra


ACTION_WORDS = {
    "user.created": "created the user",
    "user.role_changed": "changed the role",
    "user.personal_data_changed": "changed the personal-data grant",
    "user.teams_changed": "changed the teams",
    "user.deactivated": "deactivated the user",
    "user.reactivated": "reactivated the user",
    "user.password_set": "set a new password",
    "user.time_zone_changed": "changed the time zone",
}


def change_words(entry: AuditEntry) -> str:
    """ "role: viewer → admin" from an entry's old and new values."""
    old = entry.old if isinstance(entry.old, dict) else {}
    new = entry.new if isinstance(entry.new, dict) else {}
    parts = []
    for key in new or old:
        label = key.replace("_", " ")
        before, after = value_words(key, old.get(key)), value_words(key, new.get(key))
        parts.append(f"{label}: {before} → {after}" if key in old else f"{label}: {after}")
    return "; ".join(parts)


def value_words(key: str, value) -> str:
    if key == "time_zone" and not value:
        return "server default"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value) if value not in (None, "") else "none"


def show_password_once(request: HttpRequest, user, password: str, notice: str) -> HttpResponse:
    """The generated password is in this response only: never redirected to, never cached."""
    response = render(
        request,
        "accounts/user_edit.html",
        edit_context(user, new_password=password, notice=notice),
    )
    response["Cache-Control"] = "no-store"
    return response


@role_required(*READ_ROLES)
def preferences(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request.user)
    form = PreferencesForm(
        request.POST if request.method == "POST" else None,
        initial={"time_zone": membership.time_zone},
    )
    if request.method == "POST" and form.is_valid():
        try:
            set_time_zone(request.user, form.cleaned_data["time_zone"], actor=request.user)
        except AccountError as exc:
            form.add_error(exc.field, exc.message)
        else:
            zone = form.cleaned_data["time_zone"] or timezone.get_default_timezone_name()
            messages.success(request, f"Times are now shown in {zone}.")
            return redirect("preferences")
    return render(request, "accounts/preferences.html", {"form": form})
