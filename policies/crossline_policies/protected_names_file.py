"""The hub's protected-names file (`names.protected_names_document`), as Synapse's module and the
hub's gateway read it: re-read whenever the hub rewrites it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from crossline_policies.hub_file import HubFile
from crossline_policies.names import Protected, load_protected, staff_names


class ProtectedNamesFile:
    def __init__(self, path: Path):
        # While the file cannot be read, the names last read stay protected (none before the first
        # read: reserved words, hidden characters and mixed scripts are still refused).
        self._file = HubFile(path, load_protected, lambda last: last or (Protected(), ()), "protected-names")

    def current(self) -> tuple[Protected, tuple[str, ...]]:
        """The names and hub accounts, and the staff accounts whose display names the caller adds."""
        return self._file.current()


async def with_staff_names(protected: Protected, staff: Iterable[str],
                           display_name_of: Callable[[str], Awaitable[str | None]]) -> Protected:
    """`protected` with the staff's and the bot's display names as they are now (read where the name is
    checked: staff rename themselves in their clients). `display_name_of` answers None when it cannot tell."""
    return protected.with_names(staff_names([(user_id, await display_name_of(user_id)) for user_id in staff]))
