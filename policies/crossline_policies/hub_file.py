"""A JSON file the hub publishes for Synapse's module and its gateway, read again whenever the hub
replaces it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class HubFile(Generic[T]):
    """`parse` of the file's JSON, parsed again when the file changes. The hub replaces the file whole
    (a new inode each time), so its version is inode, modification time and size together: two writes
    within one tick of the file system's clock still differ. While the file cannot be read, `missing`
    answers (fail closed for what must never pass unchecked), with an error logged each time."""

    def __init__(self, path: Path, parse: Callable[[object], T], missing: Callable[[T | None], T], what: str):
        self._path = path
        self._parse = parse
        self._missing = missing
        self._what = what
        self._version: tuple[int, int, int] | None = None
        self._value: T | None = None

    def current(self) -> T:
        try:
            stat = self._path.stat()
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if version != self._version:
                self._value = self._parse(json.loads(self._path.read_text(encoding="utf-8")))
                self._version = version
        except (OSError, ValueError) as error:
            logger.error("Crossline %s file %s cannot be read (%s)", self._what, self._path, type(error).__name__)
            self._version = None
            return self._missing(self._value)
        assert self._value is not None
        return self._value
