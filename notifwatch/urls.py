from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from notifwatch.accounts import views as account_views
from notifwatch.alerts import views as alert_views
from notifwatch.api import views as api_views
from notifwatch.audit import evidence_views
from notifwatch.audit import views as audit_views
from notifwatch.deliveries import views as delivery_views
from notifwatch.failures import review_views
from notifwatch.failures import views as failure_views
from notifwatch.health import views as health_views
from notifwatch.ingest import source_views
from notifwatch.ingest import views as ingest_views

urlpatterns = [
    path("", delivery_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health_views.healthz, name="healthz"),
    path("api/v1/events", ingest_views.api_events, name="api_events"),
    path("api/v1/exceptions", api_views.exceptions, name="api_exceptions"),
    path("api/v1/exceptions/<int:pk>", api_views.exception, name="api_exception"),
    path("api/v1/notifications", api_views.notifications, name="api_notifications"),
    path("api/v1/sources", api_views.sources, name="api_sources"),
    path("api/v1/openapi.json", api_views.openapi, name="api_openapi"),
    path("api-tokens/", api_views.api_tokens, name="api_tokens"),
    path("api-tokens/revoke/", api_views.api_token_revoke, name="api_token_revoke"),
    path("hooks/<slug:slug>/", ingest_views.source_webhook, name="source_webhook"),
    path("sources/", source_views.source_list, name="source_list"),
    path("sources/<slug:slug>/", source_views.source_detail, name="source_detail"),
    path("sources/<slug:slug>/mapping/", source_views.source_mapping, name="source_mapping"),
    path("sources/<slug:slug>/reprocess/", source_views.source_reprocess, name="source_reprocess"),
    path(
        "sources/<slug:slug>/token/", source_views.source_rotate_token, name="source_rotate_token"
    ),
    path("raw/<int:pk>/", source_views.raw_event_detail, name="raw_event_detail"),
    path("notifications/", delivery_views.notification_search, name="notification_search"),
    re_path(
        r"^notifications/export\.(?P<fmt>csv|jsonl)$",
        delivery_views.notification_export,
        name="notification_export",
    ),
    path(
        "notifications/<int:pk>/",
        delivery_views.notification_detail,
        name="notification_detail",
    ),
    path("exceptions/", failure_views.exception_list, name="exception_list"),
    path("exceptions/bulk/", failure_views.exception_bulk, name="exception_bulk"),
    re_path(
        r"^exceptions/export\.(?P<fmt>csv|jsonl)$",
        failure_views.exception_export,
        name="exception_export",
    ),
    path("exceptions/<int:pk>/", failure_views.exception_detail, name="exception_detail"),
    path("exceptions/<int:pk>/action/", failure_views.exception_action, name="exception_action"),
    re_path(
        r"^exceptions/(?P<pk>[0-9]+)/export\.(?P<fmt>csv|jsonl)$",
        failure_views.exception_notifications_export,
        name="exception_notifications_export",
    ),
    path("reviews/", review_views.review_list, name="review_list"),
    path("reviews/start/", review_views.review_start, name="review_start"),
    path("reviews/<int:pk>/", review_views.review_detail, name="review_detail"),
    path(
        "reviews/<int:pk>/items/<int:item_pk>/decide/",
        review_views.review_decide,
        name="review_decide",
    ),
    path("reviews/<int:pk>/finish/", review_views.review_finish, name="review_finish"),
    path(
        "reviews/<int:pk>/confirm-routing/",
        review_views.review_confirm_routing,
        name="review_confirm_routing",
    ),
    path("reviews/<int:pk>/minutes/", review_views.review_minutes, name="review_minutes"),
    path("evidence/", evidence_views.evidence_index, name="evidence_index"),
    re_path(
        r"^evidence/(?P<week>\d{4}-\d{2}-\d{2})/$",
        evidence_views.evidence_page,
        name="evidence_page",
    ),
    re_path(
        r"^evidence/(?P<week>\d{4}-\d{2}-\d{2})/pack\.zip$",
        evidence_views.evidence_download,
        name="evidence_download",
    ),
    path("users/", account_views.user_list, name="user_list"),
    path("users/new/", account_views.user_new, name="user_new"),
    path("users/<int:pk>/", account_views.user_edit, name="user_edit"),
    path("preferences/", account_views.preferences, name="preferences"),
    path("alerts/", alert_views.alerts, name="alerts"),
    path("alerts/teams/<int:team_id>/", alert_views.alerts_team, name="alerts_team"),
    path(
        "alerts/subscriptions/<int:pk>/",
        alert_views.alert_subscription,
        name="alert_subscription",
    ),
    path("audit/", audit_views.audit_list, name="audit_list"),
    re_path(r"^audit/export\.(?P<fmt>csv|jsonl)$", audit_views.audit_export, name="audit_export"),
    path("admin/", admin.site.urls),
]
