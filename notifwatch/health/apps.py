from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "notifwatch.health"
