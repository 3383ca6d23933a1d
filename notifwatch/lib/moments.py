"""Moments and durations in words, in the local time zone."""

from datetime import datetime, timedelta

from django.utils import timezone


def parse_moment(value) -> datetime | None:
    """A moment stored in a JSON detail (ISO 8601 text), or a datetime; None if it is not one."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def moment_words(moment: datetime, now: datetime) -> str:
    """'today 14:00', 'Tue 14:00' within the week, '14 Mar 10:02' this year, '14 Mar 2024'
    before that.

    In the active time zone, so only for text made while a reader is known: stored text (an
    exception's title) never holds a clock time.
    """
    local, today = timezone.localtime(moment), timezone.localtime(now).date()
    days = (today - local.date()).days
    if days == 0:
        return f"today {local:%H:%M}"
    if 0 < days < 7:
        return f"{local:%a %H:%M}"
    if local.year == today.year:
        return f"{local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y}"


def duration_words(duration: timedelta | int | str | None) -> str:
    """'2 minutes', '1 hour', '1 day', '90 minutes', '45 seconds'; '' for what is no duration."""
    if isinstance(duration, timedelta):
        seconds = int(duration.total_seconds())
    else:
        try:
            seconds = int(duration)
        except (TypeError, ValueError):
            return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
