"""The one check every table and column name passes before it is written into SQL."""

import re

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_identifier(name: str) -> str:
    """A table or column name, refused unless it is a plain lower-case identifier."""
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{name!r} is not a plain lower-case identifier; refusing to use it in SQL"
        )
    return name
