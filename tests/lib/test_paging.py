from datetime import UTC, datetime

import pytest

from notifwatch.lib.paging import (
    numbers_cursor,
    parse_numbers_cursor,
    parse_time_cursor,
    time_cursor,
)


def test_it_reads_back_the_time_cursor_it_writes():
    moment = datetime(2025, 3, 14, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time_cursor(time_cursor(moment, 42)) == (moment, 42)


def test_it_reads_a_time_without_offset_as_utc():
    assert parse_time_cursor("2025-03-14T10:00:00_7") == (datetime(2025, 3, 14, 10, tzinfo=UTC), 7)


@pytest.mark.parametrize("value", ["", "garbage", "2025-03-14T10:00:00", "2025-03-14_x", "_5"])
def test_it_starts_from_the_first_page_for_a_time_cursor_that_makes_no_sense(value):
    assert parse_time_cursor(value) is None


def test_it_reads_back_the_numbers_cursor_it_writes():
    assert parse_numbers_cursor(numbers_cursor([3, 0, 12, 99], 50), 4) == ((3, 0, 12, 99), 50)
    assert parse_numbers_cursor("3.0.12.99", 4) == ((3, 0, 12, 99), 0)


@pytest.mark.parametrize("value", ["", "1.2.3", "1.2.3.4.5.6", "1.x.3.4", "1.-2.3.4"])
def test_it_starts_from_the_first_page_for_a_numbers_cursor_that_makes_no_sense(value):
    assert parse_numbers_cursor(value, 4) is None
