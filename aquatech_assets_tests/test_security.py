"""No credential in the repository, the logs or the metadata; no path ever becomes SQL or shell.

The product binds every value it puts in SQL (file lists, the DuckDB path, partition bounds) and
checks every identifier; it starts no shell. These tests hold it to that with inputs chosen to
break it: key material planted where a scan must find it, a fake service-account key named by
GOOGLE_APPLICATION_CREDENTIALS during a run, and pull and warehouse paths full of quotes, `$(...)`,
backticks, spaces and non-ASCII.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from aquatech_assets.definitions import build_definitions
from aquatech_assets.partitions import build_partitions
from aquatech_assets.resources import DuckDBWarehouse
from aquatech_assets.settings import Settings
from aquatech_assets_tests.conftest import BASE_PULLS, START_DATE, Pipeline, write_pulls
from aquatech_assets_tests.test_pipeline import DAU_BASE, EVENTS_BASE, MAU_BASE

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "aquatech_assets"

# Key-looking material; each pattern is written so that its own source does not match it.
KEY_PATTERNS = {
    "a PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    'a "private_key" JSON field': re.compile(r'"private_key(_id)?"\s*:\s*"'),
    "a service-account key file": re.compile(r'"type"\s*:\s*"service_account"'),
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{36}\b"),
    "a Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}\b"),
    "a PostHog project key": re.compile(r"\bph[cx]_[0-9A-Za-z]{30,}\b"),
}
KEY_FILE_NAMES = re.compile(r"(\.pem|\.p12|\.pfx|\.key|(^|/)\.env|credentials[^/]*\.json)$")

FAKE_SECRET = "FAKE-SECRET-3f9c1e7a-do-not-log"


def key_material(text: str) -> list[str]:
    return [name for name, pattern in KEY_PATTERNS.items() if pattern.search(text)]


def fake_service_account(path: Path) -> Path:
    """A key file shaped like Google's, whose every secret part is FAKE_SECRET."""
    # Written in pieces, so that this file itself passes the key scan.
    private_key = "private" + "_key"
    key = {
        "type": "service" + "_account",
        "project_id": "aquatech-test",
        f"{private_key}_id": FAKE_SECRET,
        private_key: "-----BEGIN "
        + f"PRIVATE KEY-----\n{FAKE_SECRET}\n-----END PRIVATE KEY-----\n",
        "client_email": f"{FAKE_SECRET}@aquatech-test.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(key), encoding="utf-8")
    return path


def test_the_key_scan_finds_planted_key_material(tmp_path):
    planted = fake_service_account(tmp_path / "key.json").read_text(encoding="utf-8")

    assert key_material(planted) == [
        "a PEM private key",
        'a "private_key" JSON field',
        "a service-account key file",
    ]
    assert key_material("AKIA" + "ABCDEFGHIJKLMNOP and ghp_" + "a" * 36) == [
        "an AWS access key id",
        "a GitHub token",
    ]
    assert KEY_FILE_NAMES.search("deploy/gcp-credentials.json")
    assert key_material("GOOGLE_APPLICATION_CREDENTIALS pointing at a key file") == []


def test_no_git_tracked_file_holds_key_material_or_is_named_like_a_key():
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    paths = [path for path in tracked.split("\0") if path]
    assert "aquatech_assets/parsing.py" in paths

    found = {}
    for path in paths:
        if not (REPO / path).is_file():  # deleted in the working tree, not yet committed
            continue
        text = (REPO / path).read_bytes().decode("utf-8", errors="replace")
        if hits := key_material(text):
            found[path] = hits
        if KEY_FILE_NAMES.search(path):
            found.setdefault(path, []).append("named like a key file")
    assert found == {}


def test_a_credentials_file_never_reaches_a_log_line_or_metadata(pipeline, monkeypatch, capfd):
    key = fake_service_account(pipeline.raw_data.parent / "service-account.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    captured = capfd.readouterr()

    runs = pipeline.instance.get_runs()
    assert {"ingest_job", "daily_aggregates_job", "monthly_aggregates_job"} <= {
        run.job_name for run in runs
    }
    stored = []
    for run in runs:
        stored.append(dg.serialize_value(run))
        stored.extend(dg.serialize_value(entry) for entry in pipeline.instance.all_logs(run.run_id))
    everything = "\n".join([*stored, captured.out, captured.err])
    # What was gathered is the real record: the runs' messages and metadata are in it.
    assert "20221001-091500.json" in everything
    assert "records_rejected" in everything
    assert "rejected file 2022-10-02/20221002-050000.json" in captured.err
    assert FAKE_SECRET not in everything
    assert key_material(everything) == []


HOSTILE = 'it\'s $(touch PWNED) `touch PWNED` ; "São Paulo" 東京 & %s'


@pytest.mark.duckdb_only
def test_pulls_and_a_warehouse_under_hostile_paths_ingest_exactly(tmp_path):
    # Pull names must be stamps, so the hostility is in the folders above them (the
    # AQUATECH_RAW_DATA root and the DuckDB path), and in names that are skipped.
    root = tmp_path / HOSTILE / "raw data"
    write_pulls(root, BASE_PULLS)
    write_pulls(
        root,
        {
            "2022-10-01/x'; DROP TABLE aquatech.event_data; --.json": [],
            "2022-10-01/$(touch PWNED).json": [],
        },
    )
    database = tmp_path / HOSTILE / "warehouse 'w'.duckdb"
    home = tmp_path / "dagster home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    key = fake_service_account(tmp_path / "service-account.json")
    env = {
        **os.environ,
        "AQUATECH_RAW_DATA": str(root),
        "AQUATECH_DUCKDB_PATH": str(database),
        "DAGSTER_HOME": str(home),
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
    }
    work = tmp_path / "cwd"
    work.mkdir()

    result = subprocess.run(
        [sys.executable, "-m", "aquatech_assets.cli", "materialize"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2022-10-01/x'; DROP TABLE aquatech.event_data; --.json (name is not a pull stamp" in (
        result.stderr
    )
    assert "2022-10-01/$(touch PWNED).json (name is not a pull stamp" in result.stderr
    assert FAKE_SECRET not in output
    assert not list(tmp_path.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))
    with duckdb.connect(str(database), read_only=True) as connection:
        dau = connection.sql("SELECT event_date, dau FROM aquatech.dau ORDER BY 1").fetchall()
        mau = connection.sql("SELECT event_month, mau FROM aquatech.mau ORDER BY 1").fetchall()
        events = connection.sql(
            "SELECT uuid, distinct_id, source_file FROM aquatech.event_data ORDER BY uuid"
        ).fetchall()
        reasons = connection.sql("SELECT reason FROM aquatech.rejected_events").fetchall()
    assert (dau, mau, events) == (DAU_BASE, MAU_BASE, EVENTS_BASE)
    assert len(reasons) == 6
    # A DuckDB error names the file by its path; the reason keeps only the pull's own name.
    assert not [reason for (reason,) in reasons if str(tmp_path) in reason or "PWNED" in reason]


class RecordingConnection:
    """A DuckDB connection that notes the text and parameters of every statement it runs."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, statements: list) -> None:
        self._connection = connection
        self._statements = statements

    def execute(self, query, *args, **kwargs):
        self._statements.append((query, args, kwargs))
        return self._connection.execute(query, *args, **kwargs)

    def sql(self, query, *args, **kwargs):
        self._statements.append((query, args, kwargs))
        return self._connection.sql(query, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._connection.__exit__(*exc)


def strings(value):
    """Every string inside nested lists, tuples and dicts (their values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        yield from strings(list(value.values()))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


@pytest.mark.duckdb_only
def test_no_path_is_ever_part_of_the_sql_text_only_a_bound_value(tmp_path, monkeypatch):
    # DuckDB errors on a path send its file through the Python salvage path, which would hide
    # a path pasted into SQL; so the statements themselves are checked.
    root = tmp_path / HOSTILE / "raw data"
    database = tmp_path / HOSTILE / "warehouse 'w'.duckdb"
    write_pulls(root, BASE_PULLS)
    statements: list = []
    connect = duckdb.connect
    monkeypatch.setattr(
        duckdb, "connect", lambda *a, **k: RecordingConnection(connect(*a, **k), statements)
    )
    settings = Settings(str(root), "duckdb", str(database), START_DATE)
    defs = build_definitions(settings, raw_data=str(root), duckdb_path=str(database))
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(root, database, defs, build_partitions(START_DATE), instance)
        pipeline.materialize()
        assert pipeline.rows("dau", "event_date", "event_date, dau") == DAU_BASE

    texts = [str(query) for query, _, _ in statements]
    bound = set(strings([(args, kwargs) for _, args, kwargs in statements]))
    assert any("read_json_objects" in text for text in texts)
    assert [text for text in texts if HOSTILE in text or "raw data" in text] == []
    assert str(root / "2022-10-01" / "20221001-091500.json") in bound
    assert str(database) in bound


def test_a_column_name_that_is_not_a_plain_identifier_is_refused(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))

    with pytest.raises(ValueError, match="not a plain lower-case identifier"):
        warehouse.replace("t", pl.DataFrame({'a" INT); DROP TABLE t; --': [1]}), None)


SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
ALWAYS_SHELL = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
                ("subprocess", "getstatusoutput")}  # fmt: skip


def shell_calls(source: str) -> list[str]:
    """Calls in the source that run a shell, or a subprocess given one command string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        call = (owner, node.func.attr)
        if call in ALWAYS_SHELL or (owner == "os" and call[1].startswith(("spawn", "exec"))):
            found.append(f"line {node.lineno}: {owner}.{call[1]}")
        elif owner == "subprocess" and call[1] in SUBPROCESS_CALLS:
            shell = [keyword.value for keyword in node.keywords if keyword.arg == "shell"]
            if shell and not (isinstance(shell[0], ast.Constant) and shell[0].value is False):
                found.append(f"line {node.lineno}: subprocess.{call[1]}(shell=...)")
            elif node.args and not isinstance(node.args[0], ast.List | ast.Tuple | ast.Name):
                found.append(f"line {node.lineno}: subprocess.{call[1]} of a command string")
    return found


def test_the_shell_scan_finds_each_way_of_starting_a_shell():
    planted = (
        "os.system('ls ' + path)\n"
        "subprocess.run(command, shell=True)\n"
        "subprocess.check_output(f'cat {path}')\n"
        "subprocess.getoutput('ls')\n"
        "subprocess.run(['duckdb', path], shell=False)\n"
    )

    assert shell_calls(planted) == [
        "line 1: os.system",
        "line 2: subprocess.run(shell=...)",
        "line 3: subprocess.check_output of a command string",
        "line 4: subprocess.getoutput",
    ]


def test_the_package_starts_no_shell_and_passes_no_command_string():
    offences = {
        str(path.relative_to(REPO)): calls
        for path in sorted(PACKAGE.rglob("*.py"))
        if (calls := shell_calls(path.read_text(encoding="utf-8")))
    }

    assert offences == {}
