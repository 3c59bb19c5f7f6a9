"""Pull file names to UTC pull times, and which files a pull-hour window lists."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aquatech_assets.pulls import list_pulls, pulled_at_from_name, scan_pulls

# The folder under test. Only the two 23:xx pulls of 2022-10-13 fall in [23:00, 00:00).
FOLDER = {
    "2022-10-12/notes.txt": "not a pull",
    "2022-10-13/20221013-225959.json": "[]",
    "2022-10-13/20221013-230000.json": "[]",
    "2022-10-13/20221013-235959.json": "[]",
    "2022-10-13/latest.json": "[]",
    "2022-10-13/old/20221013-230500.json": "[]",
    "2022-10-14/20221014-000000.json": "[]",
    "2022-10-14/latest.json": "[]",
    "2022-10-14/20221013-231500.json": "[]",
    "notes/20221013-230000.json": "[]",
    "20221013-230000.json": "[]",
}
WINDOW_START = datetime(2022, 10, 13, 23, tzinfo=UTC)
WINDOW_END = datetime(2022, 10, 14, 0, tzinfo=UTC)


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "raw_data", FOLDER)


def test_a_pull_stamp_name_gives_its_exact_utc_time():
    assert pulled_at_from_name("20221013-030129.json") == datetime(
        2022, 10, 13, 3, 1, 29, tzinfo=UTC
    )
    assert pulled_at_from_name("20240229-235959.json") == datetime(
        2024, 2, 29, 23, 59, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "name",
    [
        "20221013-0301.json",
        "20221399-030129.json",
        "20221013-246060.json",
        "latest.json",
        "20221013-030129.json.tmp",
        "x20221013-030129.json",
        "20221013-030129.json\n",
    ],
)
def test_a_name_that_is_not_a_pull_stamp_gives_none(name):
    assert pulled_at_from_name(name) is None


def test_the_window_lists_only_the_pulls_stamped_inside_it_in_time_order(root):
    listing = list_pulls(root, WINDOW_START, WINDOW_END)

    assert [(pull.source_file, pull.pulled_at) for pull in listing.files] == [
        ("2022-10-13/20221013-230000.json", datetime(2022, 10, 13, 23, 0, 0, tzinfo=UTC)),
        ("2022-10-13/20221013-235959.json", datetime(2022, 10, 13, 23, 59, 59, tzinfo=UTC)),
    ]
    assert [pull.path for pull in listing.files] == [
        root / "2022-10-13" / "20221013-230000.json",
        root / "2022-10-13" / "20221013-235959.json",
    ]


def test_skipped_paths_are_reported_with_reasons_only_from_the_folders_the_window_lists(root):
    listing = list_pulls(root, WINDOW_START, WINDOW_END)

    assert [str(skipped) for skipped in listing.skipped] == [
        "2022-10-13/latest.json (name is not a pull stamp YYYYMMDD-HHMMSS.json)",
        "2022-10-13/old/ (a folder inside a date folder)",
    ]


def test_a_window_crossing_midnight_lists_both_day_folders(root):
    listing = list_pulls(
        root, datetime(2022, 10, 13, 23, 30, tzinfo=UTC), datetime(2022, 10, 14, 1, tzinfo=UTC)
    )

    assert [pull.source_file for pull in listing.files] == [
        "2022-10-13/20221013-235959.json",
        "2022-10-14/20221014-000000.json",
    ]
    assert [skipped.path for skipped in listing.skipped] == [
        "2022-10-13/latest.json",
        "2022-10-13/old/",
        "2022-10-14/20221013-231500.json",
        "2022-10-14/latest.json",
    ]


def test_a_window_with_no_day_folder_lists_nothing(root):
    listing = list_pulls(
        root, datetime(2022, 10, 20, 5, tzinfo=UTC), datetime(2022, 10, 20, 6, tzinfo=UTC)
    )

    assert (listing.files, listing.skipped) == ([], [])


def test_a_scan_finds_the_hours_a_run_reads_and_says_why_it_skips_the_rest(root):
    scan = scan_pulls(root)

    assert [str(skipped) for skipped in scan.skipped] == [
        "2022-10-12/notes.txt (name is not a pull stamp YYYYMMDD-HHMMSS.json)",
        "2022-10-13/latest.json (name is not a pull stamp YYYYMMDD-HHMMSS.json)",
        "2022-10-13/old/ (a folder inside a date folder)",
        "2022-10-14/20221013-231500.json (stamped for another day than its folder)",
        "2022-10-14/latest.json (name is not a pull stamp YYYYMMDD-HHMMSS.json)",
        "20221013-230000.json (not in a date folder)",
        "notes/ (not a YYYY-MM-DD folder)",
    ]
    assert scan.hours == [
        datetime(2022, 10, 13, 22, tzinfo=UTC),
        datetime(2022, 10, 13, 23, tzinfo=UTC),
        datetime(2022, 10, 14, 0, tzinfo=UTC),
    ]


def test_a_scan_of_a_folder_that_does_not_exist_finds_nothing(tmp_path):
    assert scan_pulls(tmp_path / "missing").hours == []
