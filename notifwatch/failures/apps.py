from django.apps import AppConfig


class FailuresConfig(AppConfig):
    name = "notifwatch.failures"
