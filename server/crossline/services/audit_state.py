"""What the moderation record keeps beside its head file, outside the database
(`DATA_DIR/audit-state.json`, 0600): when each moderators' room was last sent a head, the problem
the rooms were last told of, and up to which entry the entries written before keys (migration
0014) were keyed. In the database, whoever can write it could mark every room as just posted to,
or the problem as already told, and silence heads and alerts; or pass rewritten entries off as
old ones without a MAC.

Also the lock that keeps two keeps (the 30-second keeper and a head download) from writing the
kept head out of order.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from crossline.secrets import write_private_file



@dataclass(frozen=True)
class State:
    posted: dict[str, int] = field(default_factory=dict)  # room id -> when it was last sent a head (ms)
    alerted: str | None = None  # what the rooms were last told was wrong
    keyed_through: int | None = None  # None: the entries written before keys are not keyed yet


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Held across processes and threads (each holder opens the lock file itself)."""
    lock = path.parent / f".{path.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _parse(text: str) -> State:
    raw = json.loads(text)
    posted = {room: at for room, at in raw.get("posted", {}).items() if type(at) is int}
    alerted = raw.get("alerted") if isinstance(raw.get("alerted"), str) else None
    keyed = raw.get("keyed_through") if type(raw.get("keyed_through")) is int else None
    return State(posted, alerted, keyed)


def load(path: Path) -> State:
    """An unreadable file reads as a new hub's: every room is due a head, every problem is told."""
    try:
        return _parse(path.read_text("utf-8")) if path.exists() else State()
    except (OSError, ValueError, AttributeError, TypeError):
        return State()


def update(path: Path, change: Callable[[State], State]) -> None:
    with locked(path):
        state = change(load(path))
        write_private_file(path, json.dumps({"posted": state.posted, "alerted": state.alerted,
                                             "keyed_through": state.keyed_through}, sort_keys=True))


def posted(path: Path, rooms: list[str], at_ms: int) -> None:
    update(path, lambda state: replace(state, posted={**state.posted, **dict.fromkeys(rooms, at_ms)}))
