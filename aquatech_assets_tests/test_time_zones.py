"""The pipeline tests again under machine time zones east and west of UTC."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("zone", ["Asia/Jakarta", "America/New_York"])
def test_the_pipeline_gives_the_same_answers_in_another_machine_time_zone(zone):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(TESTS / "test_pipeline.py"), str(TESTS / "test_sensors.py")],
        env={**os.environ, "TZ": zone, "AQUATECH_EXPECT_TZ": zone},
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
