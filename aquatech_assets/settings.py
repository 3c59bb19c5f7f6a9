"""The environment variables of CONTRACT.md (and issue 6's AQUATECH_DUCKDB_LOCK_TIMEOUT), read
when a run or a command starts.

Nothing here runs at import time, so importing the package never depends on the shell it was
imported from; the definitions and each resource call these functions when they are used.
"""

import os
from dataclasses import dataclass
from datetime import date

DEFAULT_RAW_DATA = "data/raw_data"
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_START_DATE = "2022-09-01"
DEFAULT_DUCKDB_LOCK_TIMEOUT = 600.0
WAREHOUSES = ("duckdb", "bigquery")


class SettingsError(ValueError):
    """A setting that cannot be used; its message says which and what to do."""


@dataclass(frozen=True)
class Settings:
    raw_data: str
    warehouse: str
    duckdb_path: str
    start_date: date

    @classmethod
    def from_env(cls) -> "Settings":
        warehouse = os.environ.get("AQUATECH_WAREHOUSE", "duckdb").strip().lower()
        if warehouse not in WAREHOUSES:
            raise SettingsError(
                f"AQUATECH_WAREHOUSE={warehouse!r} is not one of {', '.join(WAREHOUSES)}."
            )
        start = os.environ.get("AQUATECH_START_DATE", DEFAULT_START_DATE)
        try:
            start_date = date.fromisoformat(start)
        except ValueError as error:
            raise SettingsError(
                f"AQUATECH_START_DATE={start!r} is not a YYYY-MM-DD date."
            ) from error
        duckdb_lock_timeout()  # an unusable value stops a command before its first run
        return cls(
            raw_data=raw_data_location(),
            warehouse=warehouse,
            duckdb_path=duckdb_path(),
            start_date=start_date,
        )


def raw_data_location() -> str:
    return os.environ.get("AQUATECH_RAW_DATA") or DEFAULT_RAW_DATA


def duckdb_path() -> str:
    return os.environ.get("AQUATECH_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH


def duckdb_lock_timeout() -> float:
    """Seconds a run waits for another process (a notebook, a BI tool) to let go of the file."""
    text = os.environ.get("AQUATECH_DUCKDB_LOCK_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_DUCKDB_LOCK_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise SettingsError(
            f"AQUATECH_DUCKDB_LOCK_TIMEOUT={text!r} is not a number of seconds (0 or more)."
        )
    return seconds
