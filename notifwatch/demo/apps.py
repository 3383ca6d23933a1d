from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make demo`: it feeds the other apps and none of them imports it."""

    name = "notifwatch.demo"
