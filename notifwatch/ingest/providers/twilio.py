"""Twilio status callbacks. Being written."""
