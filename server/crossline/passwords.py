"""Staff web passwords: argon2id (argon2-cffi's defaults follow RFC 9106's recommendation), and
the few threads that check them.

A check takes 64 MiB and about 160 ms of a core. On asyncio's default executor a flood of wrong
passwords queued ahead of everything else that runs in a thread (a vote batch waited 11 s behind
60 of them): checks get their own threads, and a bounded number may wait for one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verified against when the account is unknown, so a wrong user name costs the same time.
_DUMMY_HASH = _hasher.hash("crossline-no-such-account")

# One thread per two cores: the other half stays for the event loop, Synapse and the vote batcher
# (on the 2-core reference machine, one thread).
PASSWORD_THREADS = max(1, (os.cpu_count() or 2) // 2)
# Checks that may wait for a thread: 8 of 160 ms each end within the 1.5 s every failed login is
# padded to, so a waiting check still answers at the padded moment. Past it, the sign-in is
# answered "too many at once" instead of queueing without end.
PASSWORD_CHECKS_WAITING_PER_THREAD = 8

T = TypeVar("T")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class PasswordChecksBusy(Exception):
    """Every thread is busy and the queue for them is full."""


class PasswordChecks:
    """Runs password hashing and checks on their own threads, with a bounded queue."""

    def __init__(self, threads: int = PASSWORD_THREADS,
                 waiting_per_thread: int = PASSWORD_CHECKS_WAITING_PER_THREAD):
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="crossline-passwords")
        self._slots = threading.BoundedSemaphore(threads * (1 + waiting_per_thread))

    async def run(self, check: Callable[..., T], *args) -> T:
        """Raises PasswordChecksBusy at once when the queue is full. A slot is given back when the
        check ends, in its thread: a request that went away while its check ran still held one."""
        if not self._slots.acquire(blocking=False):
            raise PasswordChecksBusy
        try:
            future = self._executor.submit(check, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
