"""Small jobs of the tests' own, run by the scheduling machinery like the real ones."""

from django.utils import timezone


def ok() -> dict:
    # A datetime in the summary: the run must still store it (as JSON text).
    return {"ok": True, "at": timezone.now()}


def boom() -> dict:
    raise RuntimeError("the detection database went away")
