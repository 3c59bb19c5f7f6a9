"""bqemulator for the BigQuery test run: its own venv, offline extensions, loopback, stop by pid.

The emulator needs duckdb 1.5 while the project runs duckdb 2, and its `[testing]` extra brings
a pytest plugin that would join every pytest run of the venv it is installed in, so it lives in
a venv of its own beside the project's (created on first use, reused after). At start-up its
DuckDB installs the spatial and avro extensions, which would mean a download; they are installed
first from their PyPI wheels into a HOME private to the emulator, where DuckDB then finds them,
so nothing leaves the machine. The emulator listens on 127.0.0.1 only, on ports the kernel picks
(read back from its log), and is stopped by its process id: SIGTERM, then SIGKILL.
"""

import fcntl
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".bqemulator-venv"
REQUIREMENTS = (
    "bqemulator[testing]==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "duckdb-extension-avro==1.5.5",
    "numpy",
)
PROJECT = "test-project"
INSTALL_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 15
POLL_SECONDS = 0.2

# Run by the emulator venv's python: copies each wheel's extension into $HOME/.duckdb/extensions
# (INSTALL from a file path) and loads it once, to fail here rather than at emulator start.
INSTALL_EXTENSIONS = """
import pathlib, duckdb, duckdb_extension_avro, duckdb_extension_spatial
connection = duckdb.connect()
for module, name in ((duckdb_extension_spatial, "spatial"), (duckdb_extension_avro, "avro")):
    root = pathlib.Path(module.__file__).parent
    path = sorted(root.glob(f"extensions/*/{name}.duckdb_extension"))[-1]
    connection.execute(f"INSTALL '{path}'")
    connection.execute(f"LOAD {name}")
"""


class EmulatorError(RuntimeError):
    pass


@dataclass
class Emulator:
    process: subprocess.Popen
    endpoint: str
    log: Path
    project: str = PROJECT

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM to the emulator's pid, SIGKILL if it has not exited within `timeout`."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def client(self):
        """A real BigQuery client pointed at the emulator, for fixtures' own housekeeping."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


def ensure_venv(venv: Path = VENV) -> Path:
    """The emulator's executable, installing its venv first if it is missing or out of date."""
    venv.mkdir(parents=True, exist_ok=True)
    marker = venv / "aquatech-requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    executable = venv / "bin" / "bqemulator"
    with (venv / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists() and marker.exists() and marker.read_text() == wanted:
            return executable
        _run([sys.executable, "-m", "venv", str(venv)], "create the emulator venv")
        _run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            "install bqemulator into its venv",
        )
        marker.write_text(wanted)
    return executable


def install_extensions(venv: Path, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    _run(
        [str(venv / "bin" / "python"), "-c", INSTALL_EXTENSIONS],
        "install DuckDB's spatial and avro extensions from their wheels",
        env=_environment(home),
    )


def start(workdir: Path, venv: Path = VENV) -> Emulator:
    """Starts an ephemeral emulator and returns once it answers the REST API."""
    executable = ensure_venv(venv)
    home = workdir / "home"
    install_extensions(venv, home)
    log = workdir / "bqemulator.log"
    command = [
        str(executable),
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        "0",
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        "0",
        "--project",
        PROJECT,
        "--ephemeral",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=_environment(home),
        )
    emulator = None
    try:
        port = _wait_for_port(process, log)
        emulator = Emulator(process, f"http://127.0.0.1:{port}", log)
        _wait_until_answering(emulator)
    except BaseException:
        (emulator or Emulator(process, "", log)).stop()
        raise
    return emulator


def _wait_for_port(process: subprocess.Popen, log: Path) -> int:
    """The REST port the emulator chose, from its `rest.listen` log event."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(f"bqemulator exited with {process.returncode}:\n{_tail(log)}")
        for line in log.read_text(errors="replace").splitlines():
            if '"rest.listen"' not in line:
                continue
            try:
                return int(json.loads(line)["port"])
            except (ValueError, KeyError) as error:
                raise EmulatorError(f"unreadable rest.listen event: {line}") from error
        time.sleep(POLL_SECONDS)
    raise EmulatorError(
        f"bqemulator did not listen within {START_TIMEOUT_SECONDS} s:\n{_tail(log)}"
    )


def _wait_until_answering(emulator: Emulator) -> None:
    url = f"{emulator.endpoint}/bigquery/v2/projects/{emulator.project}/datasets"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise EmulatorError(f"bqemulator exited:\n{_tail(emulator.log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(POLL_SECONDS)
    raise EmulatorError(f"bqemulator did not answer {url}:\n{_tail(emulator.log)}")


def _environment(home: Path) -> dict[str, str]:
    """A bare environment: the private HOME, and nothing of the user's Google settings."""
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _run(command: list[str], purpose: str, env: dict | None = None) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, env=env
        )
    except subprocess.TimeoutExpired as error:
        raise EmulatorError(f"could not {purpose}: timed out after {error.timeout} s") from error
    if result.returncode != 0:
        raise EmulatorError(
            f"could not {purpose} ({' '.join(command)}):\n{result.stdout}{result.stderr}"
        )


def _tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
