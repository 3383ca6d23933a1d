from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifwatch.lib.moments import duration_words, moment_words, parse_moment

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def test_it_words_moments_in_local_time():
    with timezone.override("Europe/Paris"):
        assert moment_words(datetime(2025, 3, 14, 9, 5, tzinfo=UTC), NOW) == "today 10:05"
        assert moment_words(datetime(2025, 3, 11, 13, 0, tzinfo=UTC), NOW) == "Tue 14:00"
        assert moment_words(datetime(2025, 2, 2, 13, 0, tzinfo=UTC), NOW) == "2 Feb 14:00"
        assert moment_words(datetime(2024, 2, 2, 13, 0, tzinfo=UTC), NOW) == "2 Feb 2024"


def test_it_words_a_later_day_by_its_date():
    with timezone.override("UTC"):
        assert moment_words(datetime(2025, 3, 15, 9, 0, tzinfo=UTC), NOW) == "15 Mar 09:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-14T10:00:00+00:00", datetime(2025, 3, 14, 10, tzinfo=UTC)),
        (datetime(2025, 3, 14, 10, tzinfo=UTC), datetime(2025, 3, 14, 10, tzinfo=UTC)),
        ("2025-03-14T10:00:00", datetime(2025, 3, 14, 10)),
        ("", None),
        (None, None),
        ("yesterday", None),
        (17, None),
    ],
)
def test_it_reads_a_stored_moment_back_or_gives_none(value, expected):
    assert parse_moment(value) == expected


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(minutes=2), "2 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(days=1), "1 day"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(seconds=45), "45 seconds"),
        (600, "10 minutes"),
        ("7200", "2 hours"),
        (None, ""),
        ("soon", ""),
    ],
)
def test_it_words_a_duration_in_its_largest_whole_unit(duration, expected):
    assert duration_words(duration) == expected
