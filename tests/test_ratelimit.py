"""The one rate limiter (pure, injected clock) and what the web does with it: nobody can lock a
staff member out, and a failed login tells nobody who is on the hub, by its answer or its time."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import replace

import pytest

from crossline import passwords
from crossline.passwords import PasswordChecks
from crossline.domain.ratelimit import Ratelimiter
from crossline.storage import members
from crossline.web import staff
from crossline.web.app import create_app
from crossline.web.keys import HUB
from crossline.web.ratelimit import (LIMITS, LOGIN_FAILURE_ANSWER_MS, LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS,
                                     PASSWORD_CHECKS, REPORTS_PER_ADDRESS, Limits, address_key)
from tests.fakes import FakeClock

MINUTE = 60_000


def test_a_bucket_per_key_fills_and_drains_with_the_clock():
    clock = FakeClock(0)
    limiter = Ratelimiter(clock, burst=3, per_ms=3 * MINUTE)
    assert [limiter.can_do_action("a")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.can_do_action("a") == (False, MINUTE)  # one action drains away in a minute
    assert limiter.can_do_action(("a", "other address"))[0]  # another key is untouched
    clock.now = MINUTE
    assert limiter.can_do_action("a")[0] and not limiter.can_do_action("a")[0]
    assert limiter.can_do_action("b", update=False)[0] and limiter.can_do_action("b", update=False)[0]


def test_recorded_actions_count_even_past_the_limit_and_a_refund_gives_one_back():
    clock = FakeClock(0)
    limiter = Ratelimiter(clock, burst=2, per_ms=MINUTE)
    for _ in range(4):
        limiter.record_action("k")
    assert limiter.can_do_action("k", update=False) == (False, 90_000)  # 3 of 4 must drain, 30 s each
    limiter.record_action("k", -3)
    assert limiter.can_do_action("k")[0]


def test_memory_is_bounded_drained_buckets_go_first():
    clock = FakeClock(0)
    limiter = Ratelimiter(clock, burst=1, per_ms=MINUTE, max_keys=10)
    limiter.can_do_action("old")
    clock.now = 2 * MINUTE  # "old" has drained
    for n in range(20):
        limiter.can_do_action(n)
    assert len(limiter._buckets) <= 10
    assert not limiter.can_do_action(19)[0]  # the newest are kept


@pytest.fixture
def login_app(hub):
    """The hub behind a trusted local proxy, with a staff member and a Matrix participant."""
    config = replace(hub.config, hub=replace(hub.config.hub, trusted_proxies=("127.0.0.1", "::1")))
    with hub.engine.begin() as conn:
        members.add_member(conn, "@staffer:crossline.local", None, None, frozenset({"facilitator"}),
                           passwords.hash_password("the right one"), 0)
        side = 1
        members.add_member(conn, "@maria:crossline.local", 1, side, frozenset({"participant"}), None, 0)
    return create_app(config, clock=hub.clock, background=False)


class FakeSynapseCheck:
    """Records Synapse's password checks; each takes 300 ms on the hub's clock, as the real one does."""

    def __init__(self, clock):
        self.clock, self.calls = clock, []

    async def password_matches(self, user_id: str, password: str) -> bool:
        self.calls.append(user_id)
        self.clock.now += 300
        return False


async def login_client(aiohttp_client, app, hub):
    client = await aiohttp_client(app)
    waited = []

    async def sleep(seconds: float) -> None:  # waits on the hub's clock, records until when
        hub.clock.now += round(seconds * 1000)
        waited.append(hub.clock.now)

    client.app[LIMITS].pacer.sleep = sleep
    client.app[HUB].homeserver = FakeSynapseCheck(hub.clock)
    return client, waited


async def attempt(client, username: str, password: str, address: str) -> int:
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = await client.post("/login", data={"csrf_token": token, "username": username, "password": password},
                                 headers={"X-Forwarded-For": address}, allow_redirects=False)
    return response.status


async def test_nobody_can_lock_a_staff_member_out(aiohttp_client, login_app, hub):
    client, _ = await login_client(aiohttp_client, login_app, hub)
    attacker, staffer = "203.0.113.9", "198.51.100.7"
    for _ in range(LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS):
        assert await attempt(client, "staffer", "guess", attacker) == 401
    assert await attempt(client, "staffer", "guess", attacker) == 429
    assert await attempt(client, "staffer", "the right one", attacker) == 429  # the attacker stays slowed
    assert await attempt(client, "staffer", "the right one", staffer) == 303  # she is not
    # Her own typos count only against her own address, and a success gives its attempt back.
    for _ in range(LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS - 1):
        assert await attempt(client, "staffer", "typo", staffer) == 401
    assert await attempt(client, "staffer", "the right one", staffer) == 303


async def test_an_untrusted_client_cannot_choose_her_address(aiohttp_client, hub):
    """Without trusted proxies the header is ignored: a flood with a new X-Forwarded-For each time
    is still one address."""
    client, _ = await login_client(aiohttp_client, create_app(hub.config, clock=hub.clock, background=False), hub)
    statuses = [await attempt(client, "nobody", "wrong", f"192.0.2.{n}")
                for n in range(LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS + 1)]
    assert statuses == [401] * LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS + [429]


async def test_every_failed_login_does_the_same_work_and_answers_at_the_same_moment(aiohttp_client, login_app, hub,
                                                                                   monkeypatch):
    client, waited = await login_client(aiohttp_client, login_app, hub)
    verifications = []

    def counted(password_hash, password):
        verifications.append(password_hash is not None)
        return passwords.verify_password(password_hash, password)

    monkeypatch.setattr(staff, "verify_password", counted)
    answered_after = {}
    for who in ("nobody-at-all", "staffer", "maria"):  # unknown, staff, a participant with a Matrix account
        verifications.clear()
        began = hub.clock.now
        assert await attempt(client, who, "wrong password", f"192.0.2.{len(answered_after)}") == 401
        assert len(verifications) == 1  # exactly one argon2 verification, real or dummy
        answered_after[who] = waited[-1] - began
    assert client.app[HUB].homeserver.calls == ["@maria:crossline.local"]  # Synapse's check, 300 ms of it
    assert set(answered_after.values()) == {LOGIN_FAILURE_ANSWER_MS}


def test_trusted_proxies_are_believed_only_as_far_as_the_chain_of_trusted_proxies_goes():
    from aiohttp.test_utils import make_mocked_request

    from crossline.web.security import client_address

    def seen(remote: str, forwarded: str | None, trusted=("127.0.0.1", "10.0.0.0/8")) -> str:
        request = make_mocked_request("POST", "/report", headers={"X-Forwarded-For": forwarded} if forwarded else {})
        request._transport_peername = (remote, 5000)
        return client_address(request, trusted)

    assert seen("127.0.0.1", "203.0.113.9, 198.51.100.7") == "198.51.100.7"  # what the proxy saw
    assert seen("127.0.0.1", "198.51.100.7, 10.1.2.3") == "198.51.100.7"  # through two trusted proxies
    assert seen("192.0.2.50", "1.2.3.4") == "192.0.2.50"  # not a trusted proxy: the header is ignored
    assert seen("127.0.0.1", "1.2.3.4", trusted=()) == "127.0.0.1"  # none configured: ignored from anyone
    assert seen("127.0.0.1", None) == "127.0.0.1"


@pytest.mark.parametrize("role, first_page", [("facilitator", "/lines"), ("moderator", "/moderation"),
                                              ("negotiator", "/reports"), ("admin", "/lines")])
async def test_a_login_lands_on_the_first_page_of_her_role(aiohttp_client, hub, role, first_page):
    """Not on a page her role may not open (a moderator sent to /lines met a refusal)."""
    with hub.engine.begin() as conn:
        members.add_member(conn, f"@{role}-x:crossline.local", None, None, frozenset({role}),
                           passwords.hash_password("the right one"), 0)
    client, _ = await login_client(aiohttp_client, create_app(hub.config, clock=hub.clock, background=False), hub)
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = await client.post("/login", data={"csrf_token": token, "username": f"{role}-x",
                                                 "password": "the right one"}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, first_page)
    assert (await client.get(first_page, allow_redirects=False)).status == 200


@pytest.mark.parametrize("one, same, other", [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::1"),  # one /64, the next /64
    ("192.0.2.7", "::ffff:192.0.2.7", "192.0.2.8"),  # IPv4 by itself, also when mapped into IPv6
])
def test_an_ipv6_address_is_limited_by_its_64_an_ipv4_one_by_itself(one, same, other):
    assert address_key(one) == address_key(same) != address_key(other)


def test_rotating_addresses_within_one_64_gives_no_more_guesses_logins_or_reports():
    limits = Limits.on(FakeClock(0))
    allowed = sum(limits.login_attempt("admin", f"2001:db8:1:2::{n:x}") for n in range(1000))
    assert allowed == LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
    assert limits.login_attempt("admin", "2001:db8:1:3::1")  # the next /64 is someone else
    held = [limits.report_must_be_held(f"2001:db8:9:9:{n:x}::1") for n in range(REPORTS_PER_ADDRESS + 1)]
    assert held == [False] * REPORTS_PER_ADDRESS + [True]


async def test_a_login_flood_from_one_64_behind_the_proxy_is_one_sender(aiohttp_client, login_app, hub):
    client, _ = await login_client(aiohttp_client, login_app, hub)
    statuses = [await attempt(client, "staffer", "guess", f"2001:db8:5:6::{n:x}")
                for n in range(LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS + 1)]
    assert statuses == [401] * LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS + [429]


async def test_password_checks_run_on_their_own_threads_and_a_full_queue_answers_429_at_the_padded_moment(
        aiohttp_client, login_app, hub, monkeypatch):
    checks = login_app[PASSWORD_CHECKS] = PasswordChecks(threads=1, waiting_per_thread=0)
    client, waited = await login_client(aiohttp_client, login_app, hub)
    threads = []

    def recorded(password_hash, password):
        threads.append(threading.current_thread().name)
        return passwords.verify_password(password_hash, password)

    monkeypatch.setattr(staff, "verify_password", recorded)
    assert await attempt(client, "staffer", "guess", "192.0.2.1") == 401
    assert threads == ["crossline-passwords_0"]  # not asyncio's default executor, which votes used to share

    release, running = threading.Event(), threading.Event()
    busy = asyncio.ensure_future(checks.run(lambda: (running.set(), release.wait())))
    await asyncio.to_thread(running.wait)
    began = hub.clock.now
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = await client.post("/login", data={"csrf_token": token, "username": "staffer",
                                                 "password": "the right one"}, headers={"X-Forwarded-For": "192.0.2.2"})
    assert response.status == 429 and "Too many sign-ins at once" in await response.text()  # not queued without end
    assert waited[-1] - began == LOGIN_FAILURE_ANSWER_MS  # the same moment as any failure
    release.set()
    await busy
    assert len(threads) == 1  # the refused sign-in checked nothing
    for _ in range(LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS - 1):  # and cost her no attempt
        assert await attempt(client, "staffer", "typo", "192.0.2.2") == 401
    assert await attempt(client, "staffer", "the right one", "192.0.2.2") == 303
