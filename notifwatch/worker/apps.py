from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "notifwatch.worker"
    verbose_name = "Background worker"
