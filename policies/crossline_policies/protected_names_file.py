"""The hub's protected-names file (`names.protected_names_document`), as Synapse's module and the
hub's gateway read it: re-read whenever the hub rewrites it."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from crossline_policies.names import Protected, load_protected, staff_names

logger = logging.getLogger(__name__)


class ProtectedNamesFile:
    def __init__(self, path: Path):
        self._path = path
        self._mtime_ns: int | None = None
        self._current: tuple[Protected, tuple[str, ...]] = (Protected(), ())

    def current(self) -> tuple[Protected, tuple[str, ...]]:
        """The names and hub accounts, and the staff accounts whose display names the caller adds.
        Without the file, reserved words, hidden characters and mixed scripts are still refused."""
        try:
            mtime_ns = self._path.stat().st_mtime_ns
            if mtime_ns != self._mtime_ns:
                self._current = load_protected(json.loads(self._path.read_text(encoding="utf-8")))
                self._mtime_ns = mtime_ns
        except (OSError, ValueError) as error:
            logger.warning("Crossline protected-names file %s unreadable (%s)", self._path, type(error).__name__)
        return self._current


async def with_staff_names(protected: Protected, staff: Iterable[str],
                           display_name_of: Callable[[str], Awaitable[str | None]]) -> Protected:
    """`protected` with the staff's and the bot's display names as they are now (read where the name is
    checked: staff rename themselves in their clients). `display_name_of` answers None when it cannot tell."""
    return protected.with_names(staff_names([(user_id, await display_name_of(user_id)) for user_id in staff]))
