from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "notifwatch.accounts"
