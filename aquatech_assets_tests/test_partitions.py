"""Instants to runs of adjacent partition keys, and pull hours to ingest runs of up to a week."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from aquatech_assets.partitions import build_partitions, hour_chunks, key_ranges
from aquatech_assets.runs import requested_hours

PARTITIONS = build_partitions(date(2022, 9, 1))


def test_days_three_four_and_nine_become_two_daily_ranges():
    instants = [
        datetime(2022, 10, 9, 12, tzinfo=UTC),
        datetime(2022, 10, 3, 0, tzinfo=UTC),
        datetime(2022, 10, 4, 23, 59, 59, tzinfo=UTC),
        datetime(2022, 10, 3, 18, 30, tzinfo=UTC),
    ]

    ranges, outside = key_ranges(instants, PARTITIONS.daily)

    assert ranges == [
        dg.PartitionKeyRange("2022-10-03", "2022-10-04"),
        dg.PartitionKeyRange("2022-10-09", "2022-10-09"),
    ]
    assert outside == []


def test_instants_before_the_start_date_or_past_the_last_partition_are_outside():
    before = datetime(2022, 8, 31, 23, 59, 59, tzinfo=UTC)
    far_future = datetime(2100, 1, 1, tzinfo=UTC)
    first = datetime(2022, 9, 1, 0, 0, tzinfo=UTC)

    ranges, outside = key_ranges([before, first, far_future], PARTITIONS.daily)

    assert ranges == [dg.PartitionKeyRange("2022-09-01", "2022-09-01")]
    assert outside == [before, far_future]


def test_the_end_of_september_and_the_first_of_october_are_one_monthly_range():
    instants = [datetime(2022, 9, 28, 10, tzinfo=UTC), datetime(2022, 10, 1, 0, tzinfo=UTC)]

    ranges, outside = key_ranges(instants, PARTITIONS.monthly)

    assert ranges == [dg.PartitionKeyRange("2022-09-01", "2022-10-01")]
    assert outside == []


def test_hour_chunks_cover_neighbouring_hours_across_midnight_in_one_range():
    hours = [
        datetime(2022, 10, 2, 0, tzinfo=UTC),
        datetime(2022, 10, 1, 23, tzinfo=UTC),
        datetime(2022, 10, 1, 9, 30, tzinfo=UTC),
        datetime(2022, 10, 1, 12, tzinfo=UTC),
    ]

    assert hour_chunks(hours, PARTITIONS) == (
        [dg.PartitionKeyRange("2022-10-01-09:00", "2022-10-02-00:00")],
        [],
    )


def test_hour_chunks_are_at_most_a_week_long():
    start = datetime(2022, 10, 1, tzinfo=UTC)
    thirty_days = [start + timedelta(hours=hour) for hour in range(30 * 24)]

    chunks, outside = hour_chunks(thirty_days, PARTITIONS)

    assert chunks == [
        dg.PartitionKeyRange("2022-10-01-00:00", "2022-10-07-23:00"),
        dg.PartitionKeyRange("2022-10-08-00:00", "2022-10-14-23:00"),
        dg.PartitionKeyRange("2022-10-15-00:00", "2022-10-21-23:00"),
        dg.PartitionKeyRange("2022-10-22-00:00", "2022-10-28-23:00"),
        dg.PartitionKeyRange("2022-10-29-00:00", "2022-10-30-23:00"),
    ]
    assert outside == []


def test_a_gap_of_more_than_twelve_hours_without_pulls_starts_a_new_chunk():
    hours = [
        datetime(2022, 10, 1, 0, tzinfo=UTC),
        datetime(2022, 10, 1, 12, tzinfo=UTC),
        datetime(2022, 10, 2, 1, tzinfo=UTC),
    ]

    assert hour_chunks(hours, PARTITIONS)[0] == [
        dg.PartitionKeyRange("2022-10-01-00:00", "2022-10-01-12:00"),
        dg.PartitionKeyRange("2022-10-02-01:00", "2022-10-02-01:00"),
    ]


def test_no_pull_hours_make_no_chunks():
    assert hour_chunks([], PARTITIONS) == ([], [])


def test_pull_hours_before_the_start_date_are_returned_as_outside():
    early = datetime(2022, 8, 15, 10, tzinfo=UTC)

    assert hour_chunks([early, datetime(2022, 9, 1, 0, tzinfo=UTC)], PARTITIONS) == (
        [dg.PartitionKeyRange("2022-09-01-00:00", "2022-09-01-00:00")],
        [early],
    )


def test_without_a_range_the_hours_with_files_are_run_and_with_one_every_hour_of_it():
    found = [datetime(2022, 10, 1, 9, tzinfo=UTC), datetime(2022, 10, 1, 12, tzinfo=UTC)]

    assert requested_hours(found, None, None) == found
    assert requested_hours(found, datetime(2022, 10, 1, 11, tzinfo=UTC), None) == [
        datetime(2022, 10, 1, 11, tzinfo=UTC),
        datetime(2022, 10, 1, 12, tzinfo=UTC),
    ]
    assert requested_hours([], datetime(2022, 10, 1, 5, tzinfo=UTC),
                           datetime(2022, 10, 1, 6, tzinfo=UTC)) == [
        datetime(2022, 10, 1, 5, tzinfo=UTC),
        datetime(2022, 10, 1, 6, tzinfo=UTC),
    ]  # fmt: skip
