"""The web's rate limits, all on the one `Ratelimiter` with explicit keys, and the pacing that makes
every failed login answer at the same moment.

Logins: failures are counted per (account, client address) and per address. Whoever fails from
her own address slows only herself: the right password from another address still works, so
nobody can lock a staff member out. Reports and additions through a status link: see
`web/reporting.py` (past the limits a report is held for review, never refused; screenshots are
kept only within their limits, words always).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from crossline.clock import Clock
from crossline.domain.ratelimit import Ratelimiter
from crossline.passwords import PasswordChecks
from crossline.web.keys import HUB
from crossline.web.security import client_address

MINUTE_MS = 60_000
# Wrong passwords for one account from one address, and from one address for any accounts.
LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = 10
LOGIN_FAILURES_PER_ADDRESS = 50
LOGIN_WINDOW_MS = 15 * MINUTE_MS
# Every failed login answers this long after it began, whatever was checked (a hub password with
# argon2, or a Matrix password with Synapse, which takes longer): the time tells nobody whether
# the name is a participant's, a staff member's or nobody's.
LOGIN_FAILURE_ANSWER_MS = 1500
# Reports from one address, and from everyone, before further ones are held for review.
REPORTS_PER_ADDRESS, REPORTS_PER_ADDRESS_WINDOW_MS = 5, 10 * MINUTE_MS
REPORTS_OVERALL, REPORTS_OVERALL_WINDOW_MS = 200, 60 * MINUTE_MS
# Additions through one status link, and from one address through any, in an hour. A reporter
# adds a few details or screenshots (three at a time) over days; anyone can get a status link by
# filing a report, and without a limit one link took 15 MB a request, without end. Past it her
# words are still kept, her screenshots not (she is told to add them later).
STATUS_ADDITIONS_PER_LINK, STATUS_ADDITIONS_PER_ADDRESS = 6, 12
STATUS_ADDITIONS_WINDOW_MS = 60 * MINUTE_MS
# Screenshot bytes kept from everyone in an hour: 13 reports with three 5 MB screenshots each, far
# more than a hub's reporters send, and it bounds what a flood from many addresses adds to the
# disk at under 5 GB a day. Past it screenshots are not kept (words are).
SCREENSHOT_BYTES_PER_HOUR = 200 * 1024 * 1024
# Below this much free space in the data directory no screenshot is kept: the database, Synapse
# and their logs need room to go on working, and a full disk would lose everyone's words.
FREE_DISK_FLOOR_BYTES = 1024 ** 3


def address_key(address: str) -> str:
    """What an address is limited as: an IPv6 address by its /64, the block one home or one server
    is given (rotating through a /64 must not give a new bucket each time), an IPv4 address (or
    one mapped into IPv6) by itself. Every limit keyed by address goes through this."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@dataclass
class Pacer:
    """Waits until a moment on the hub's clock. Tests give it a sleep that moves a fake clock."""

    clock: Clock
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def wait_until(self, deadline_ms: int) -> None:
        remaining = deadline_ms - self.clock.now_ms()
        if remaining > 0:
            await self.sleep(remaining / 1000)


@dataclass
class Limits:
    login_by_account_and_address: Ratelimiter
    login_by_address: Ratelimiter
    reports_by_address: Ratelimiter
    reports_overall: Ratelimiter
    status_additions_by_link: Ratelimiter
    status_additions_by_address: Ratelimiter
    screenshot_bytes: Ratelimiter
    free_disk_bytes: Callable[[], int]
    pacer: Pacer

    @classmethod
    def on(cls, clock: Clock, free_disk_bytes: Callable[[], int] = lambda: 0) -> Limits:
        """`free_disk_bytes`: free space in the data directory; unknown (no screenshots kept) by default."""
        return cls(Ratelimiter(clock, LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS, LOGIN_WINDOW_MS),
                   Ratelimiter(clock, LOGIN_FAILURES_PER_ADDRESS, LOGIN_WINDOW_MS),
                   Ratelimiter(clock, REPORTS_PER_ADDRESS, REPORTS_PER_ADDRESS_WINDOW_MS),
                   Ratelimiter(clock, REPORTS_OVERALL, REPORTS_OVERALL_WINDOW_MS),
                   Ratelimiter(clock, STATUS_ADDITIONS_PER_LINK, STATUS_ADDITIONS_WINDOW_MS),
                   Ratelimiter(clock, STATUS_ADDITIONS_PER_ADDRESS, STATUS_ADDITIONS_WINDOW_MS),
                   Ratelimiter(clock, SCREENSHOT_BYTES_PER_HOUR, 60 * MINUTE_MS),
                   free_disk_bytes, Pacer(clock))

    def login_attempt(self, account: str, address: str) -> bool:
        """Counts the attempt at once if it is allowed (so parallel attempts cannot all slip
        through before the first failure is known); a success gives it back."""
        address = address_key(address)
        return _take_all(((self.login_by_account_and_address, (account, address)), (self.login_by_address, address)))

    def login_succeeded(self, account: str, address: str) -> None:
        address = address_key(address)
        self.login_by_account_and_address.record_action((account, address), -1)
        self.login_by_address.record_action(address, -1)

    def report_must_be_held(self, address: str) -> bool:
        """Counted whether held or not; a report past either limit is held for review."""
        by_address, _ = self.reports_by_address.can_do_action(address_key(address))
        overall, _ = self.reports_overall.can_do_action("all")
        return not (by_address and overall)

    def status_addition_allowed(self, status_token: str, address: str) -> bool:
        """An addition through a status link, counted against the link and the address if allowed."""
        return _take_all(((self.status_additions_by_link, status_token),
                          (self.status_additions_by_address, address_key(address))))

    def screenshots_fit(self, n_bytes: int) -> bool:
        """Whether screenshots of this size may be kept now (counted if so): above the free-disk
        floor and within the hour's byte budget."""
        if n_bytes == 0:
            return True
        if self.free_disk_bytes() < FREE_DISK_FLOOR_BYTES:
            return False
        return self.screenshot_bytes.can_do_action("all", n_actions=n_bytes)[0]

    def screenshots_not_stored(self, n_bytes: int) -> None:
        """Gives back bytes counted for screenshots that were refused after all (a bad image)."""
        self.screenshot_bytes.record_action("all", -n_bytes)


def _take_all(keys) -> bool:
    """One action on every (limiter, key) if all allow it, none otherwise."""
    if not all(limiter.can_do_action(key, update=False)[0] for limiter, key in keys):
        return False
    for limiter, key in keys:
        limiter.record_action(key)
    return True


LIMITS = web.AppKey("limits", Limits)
PASSWORD_CHECKS = web.AppKey("password_checks", PasswordChecks)


class _HubClock:
    """The hub's clock, read when needed: the hub is built at start-up, after the routes."""

    def __init__(self, app: web.Application):
        self.app = app

    def now_ms(self) -> int:
        return self.app[HUB].clock.now_ms()


def setup(app: web.Application) -> None:
    app[LIMITS] = Limits.on(_HubClock(app), lambda: shutil.disk_usage(app[HUB].config.data_dir).free)
    app[PASSWORD_CHECKS] = PasswordChecks()

    async def stop_password_checks(app: web.Application) -> None:
        app[PASSWORD_CHECKS].shutdown()

    app.on_cleanup.append(stop_password_checks)


def client(request: web.Request) -> str:
    """The client's address, believing X-Forwarded-For only from `[hub] trusted_proxies`."""
    return client_address(request, request.app[HUB].config.hub.trusted_proxies)
