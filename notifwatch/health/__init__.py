"""notifwatch watching itself: its health checks, /healthz, the red banner and health alerts."""
