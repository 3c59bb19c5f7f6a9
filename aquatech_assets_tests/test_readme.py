"""The README's two commands are the ones that work: CI runs the test one, this runs the demo."""

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(python3\.11 -m venv .*)\n```", text)


def test_the_readme_gives_one_demo_and_one_test_command_and_ci_runs_the_test_one():
    demo, tests = readme_commands()

    assert demo.endswith(".venv/bin/aquatech demo")
    assert tests.endswith(".venv/bin/pytest")
    assert tests in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_demo_command_prints_dau_and_mau_of_the_sample_and_is_repeatable(tmp_path):
    demo, _ = readme_commands()
    aquatech = Path(sys.executable).with_name("aquatech")
    command = [str(aquatech), *demo.rsplit(".venv/bin/aquatech", 1)[1].split()]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AQUATECH_") and key != "DAGSTER_HOME"
    }

    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip

    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "DAU" in first.stdout and "MAU" in first.stdout
    assert "using the pulls already under data/raw_data" in second.stdout
    database = tmp_path / "data" / "warehouse.duckdb"
    with duckdb.connect(str(database), read_only=True) as connection:
        dau = dict(connection.sql("SELECT event_date, dau FROM aquatech.dau").fetchall())
        duplicates = connection.sql(
            "SELECT count(*) - count(DISTINCT uuid) FROM aquatech.event_data"
        ).fetchall()
    assert 3000 < dau[date(2022, 10, 2)] < 5000
    assert duplicates == [(0,)]
    assert first.stdout.split("DAU", 1)[1] == second.stdout.split("DAU", 1)[1]
