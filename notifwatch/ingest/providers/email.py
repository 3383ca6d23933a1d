"""Email provider adapters (django-anymail tracking webhooks). Being written."""
