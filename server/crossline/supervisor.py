"""`crossline up`: Synapse as a supervised child process, and the hub, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import aiohttp
from aiohttp import web

from crossline import secrets
from crossline.config import BOT_LOCALPART, HUB_ADMIN_LOCALPART, Config, ConfigError
from crossline.gateway.proxy import Gateway, Upstream, create_gateway
from crossline.gateway.tokens import token_key
from crossline.live import engine
from crossline.matrix.homeserver import Homeserver, synapse_session
from crossline.runtime import tune_for_serving
from crossline.secrets import write_private_file
from crossline.services import moderation
from crossline.services.hub import Hub
from crossline.services.onboarding import issue_setup_link
from crossline.synapse.files import protected_names_path
from crossline.web.app import create_app
from crossline.web.keys import HUB
from crossline_policies.protected_names_file import ProtectedNamesFile

SYNAPSE_START_TIMEOUT_S = 90
# An idle kept-alive connection is closed after this (aiohttp keeps one an hour by default, so a
# few thousand idle connections could use up the hub's file descriptors). A /sync long poll is a
# request in progress, not idle.
IDLE_CONNECTION_S = 75
SYNAPSE_STOP_TIMEOUT_S = 20
ENGINE_START_TIMEOUT_S = 30
GATEWAY_STOP_TIMEOUT_S = 2.0


class StartupError(Exception):
    pass


def _stop_when_parent_dies() -> None:
    """Runs in the child before exec: ask Linux to send SIGTERM when the hub process dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def check_port_free(host: str, port: int, what: str, config_file: Path, key: str = "port",
                    kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in kinds:
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:  # a port in TIME_WAIT is free; a UDP port is in use or not
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise ConfigError(
                    f"Port {port} on {host} is already in use, so {what} cannot listen there ({error.strerror}). "
                    f"Stop the program using it, or change [{what}] {key} in {config_file}."
                ) from error


def socket_in_use(path: Path) -> bool:
    """Whether a process listens on this UNIX socket (a file left by a dead one does not count)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


async def wait_until_socket_free(path: Path, timeout_s: float, config_file: Path) -> None:
    """A Synapse left by a hub that was killed stops by itself (the kernel sends it SIGTERM when
    its parent dies): wait for it rather than start a second one that cannot listen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while socket_in_use(path):
        if loop.time() > deadline:
            raise ConfigError(
                f"Another Synapse is still listening on {path}, so this hub's Synapse cannot start. "
                f"Stop the `crossline up` (or Synapse) that uses the data directory of {config_file}."
            )
        await asyncio.sleep(0.25)


async def wait_until_janus_gone(config: Config) -> None:
    """A Janus left by a hub that was killed gets SIGTERM from the kernel: let it finish."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + engine.STOP_TIMEOUT_S + 10
    while await asyncio.to_thread(engine.janus_answers, config.paths.janus_socket, 1):
        if loop.time() > deadline:
            raise ConfigError(f"Another Janus is still answering on {config.paths.janus_socket}. Stop the "
                              f"`crossline up` that uses the data directory of {config.paths.config_file}.")
        await asyncio.sleep(0.25)


def last_log_lines(path: Path, count: int = 20) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=count))
    except FileNotFoundError:
        return "(no log written)\n"


def write_run_state(config: Config, synapse_pid: int, **engine_pids: int | None) -> None:
    state = {"hub_pid": os.getpid(), "synapse_pid": synapse_pid, **engine_pids}
    write_private_file(config.paths.run_state, json.dumps(state))


async def ensure_hub_admin(config: Config, homeserver: Homeserver) -> str:
    """The hub's own Synapse admin account, created on first start. Its token is a secret file."""
    secrets_dir = config.paths.secrets_dir
    token_file = config.paths.secret(secrets.HUB_ADMIN_ACCESS_TOKEN)
    if token_file.exists():
        token = secrets.read_secret(secrets_dir, secrets.HUB_ADMIN_ACCESS_TOKEN)
        if await homeserver.whoami(token) == config.hub_admin_user_id:
            return token
    password = secrets.read_secret(secrets_dir, secrets.HUB_ADMIN_PASSWORD)
    if not await homeserver.username_available(HUB_ADMIN_LOCALPART):
        token = await homeserver.login_with_password(config.hub_admin_user_id, password)
    else:
        token = await homeserver.register_with_shared_secret(
            secrets.read_secret(secrets_dir, secrets.REGISTRATION_SHARED_SECRET), HUB_ADMIN_LOCALPART, password, admin=True
        )
    write_private_file(token_file, token)
    return token


class GatewayThread:
    """The client-API gateway on [synapse] host:port, in front of Synapse's socket, serving on its
    own thread and event loop. On the hub's loop, every client's request waited behind the bot's
    synchronous database work: measured with bench/bot_throughput.py, members' sends took 429 ms
    at p50 instead of 251 ms and the bot handled 36 statements/s instead of 61."""

    def __init__(self, config: Config, hub: Hub):
        self._config, self._hub = config, hub
        self._hub_loop = asyncio.get_running_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="crossline-gateway", daemon=True)

    async def start(self) -> None:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._failure is not None:
            raise self._failure

    async def cleanup(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(self._thread.join, GATEWAY_STOP_TIMEOUT_S + 5)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()
            self._ready.set()  # never leave start() waiting

    async def _room_report(self, reporter: str, room_id: str, reason: str) -> None:
        """Moderation runs on the hub's loop, where its database and Synapse session live."""
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            moderation.take_in_room_report(self._hub, reporter, room_id, reason), self._hub_loop))

    async def _serve(self) -> None:
        config, hub = self._config, self._hub
        self._stopping = asyncio.Event()
        # No total timeout (/sync long polls, large media) and no cap on connections: one per client.
        session = synapse_session(config, connections=0, auto_decompress=False,
                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        lookups = synapse_session(config)  # the gateway's own admin-API questions, on this loop
        runner = None
        try:
            homeserver = Homeserver(config.homeserver_url, lookups, admin_token=hub.homeserver.admin_token)
            gateway = Gateway(Upstream(config.homeserver_url, session), homeserver,
                              token_key(config.paths.secrets_dir), hub.clock, self._room_report,
                              config.hub.trusted_proxies,
                              protected_names=ProtectedNamesFile(protected_names_path(config)))
            # On stop, /sync long polls are cut rather than waited for: clients simply reconnect.
            runner = web.AppRunner(create_gateway(gateway), access_log=None, handle_signals=False,
                                   shutdown_timeout=GATEWAY_STOP_TIMEOUT_S, keepalive_timeout=IDLE_CONNECTION_S)
            await runner.setup()
            await web.TCPSite(runner, config.synapse.host, config.synapse.port).start()
        except BaseException as error:  # noqa: BLE001 - handed to start(), which raises it on the hub's loop
            self._failure = error
        self._ready.set()
        try:
            if self._failure is None:
                await self._stopping.wait()
        finally:
            if runner is not None:
                await runner.cleanup()
            await session.close()
            await lookups.close()


class Supervisor:
    def __init__(self, config: Config, out=sys.stdout):
        self.config = config
        self.out = out
        self.synapse: subprocess.Popen | None = None
        # Janus and coturn, when live sessions are enabled: started after Synapse, stopped first.
        self.engines: list[engine.EngineProcess] = []
        self._stop = asyncio.Event()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start_synapse(self) -> None:
        paths = self.config.paths
        stdout = open(paths.synapse_dir / "stdout.log", "ab")
        self.synapse = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(paths.synapse_config)],
            cwd=paths.synapse_dir,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own process group: Ctrl-C reaches us, and we stop Synapse in order. If the hub
            # is killed outright, the kernel stops Synapse too, so a restart finds the port free.
            start_new_session=True,
            preexec_fn=_stop_when_parent_dies,
        )
        stdout.close()

    def synapse_failure(self) -> str:
        assert self.synapse is not None
        paths = self.config.paths
        return (
            f"Synapse stopped unexpectedly (exit status {self.synapse.returncode}).\n"
            f"Last lines of {paths.synapse_log}:\n{last_log_lines(paths.synapse_log)}"
            f"Last lines of {paths.synapse_dir / 'stdout.log'}:\n{last_log_lines(paths.synapse_dir / 'stdout.log')}"
        )

    async def wait_for_synapse(self, homeserver: Homeserver) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNAPSE_START_TIMEOUT_S
        while loop.time() < deadline:
            if self.synapse.poll() is not None:
                raise StartupError(self.synapse_failure())
            if await homeserver.healthy():
                return
            await asyncio.sleep(0.25)
        raise StartupError(f"Synapse did not answer within {SYNAPSE_START_TIMEOUT_S} s. See {self.config.paths.synapse_log}.")

    def stop_synapse(self) -> None:
        if self.synapse and self.synapse.poll() is None:
            self.synapse.send_signal(signal.SIGTERM)
            try:
                self.synapse.wait(SYNAPSE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.synapse.kill()
                self.synapse.wait()

    async def start_engines(self) -> None:
        """Janus, then coturn; each must answer within ENGINE_START_TIMEOUT_S or the hub stops
        with the last lines it printed."""
        config = self.config
        self.say("Starting Janus and coturn (live sessions) ...")
        if not engine.write_engine_configs(config):
            self.say("This machine has no network interface besides loopback, where Janus never offers media: "
                     "live sessions will open but carry no audio or video.")
        config.paths.janus_socket.unlink(missing_ok=True)  # left by a Janus that was killed
        checks = [
            (engine.janus_process(config), lambda: engine.janus_answers(config.paths.janus_socket, 1)),
            (engine.coturn_process(config), lambda: engine.turn_answers(config.live.turn_host, config.live.turn_port, 1)),
        ]
        for process, answers in checks:
            self.engines.append(process)
            process.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ENGINE_START_TIMEOUT_S
            while not await asyncio.to_thread(answers):
                if not process.running() or loop.time() > deadline:
                    raise StartupError(process.failure())
                await asyncio.sleep(0.2)
        config.paths.janus_socket.chmod(0o600)  # made 0700 under the hub's umask; in a 0700 folder all the same

    def stop_engines(self) -> None:
        for process in reversed(self.engines):
            process.stop()

    async def run(self) -> int:
        config = self.config
        check_port_free(config.synapse.host, config.synapse.port, "synapse", config.paths.config_file)
        check_port_free(config.hub.host, config.hub.port, "hub", config.paths.config_file)
        if config.live.enabled:
            engine.check_packages(config)
            check_port_free(config.live.turn_host, config.live.turn_port, "live", config.paths.config_file,
                            key="turn_port", kinds=(socket.SOCK_STREAM, socket.SOCK_DGRAM))
            await wait_until_janus_gone(config)
        await wait_until_socket_free(config.paths.synapse_socket, SYNAPSE_STOP_TIMEOUT_S + 10, config.paths.config_file)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop.set)
        self.say(f"Starting Synapse ({config.synapse.server_name}) ...")
        self.start_synapse()
        runner = gateway = None
        try:
            async with synapse_session(config) as session:
                homeserver = Homeserver(config.homeserver_url, session)
                await self.wait_for_synapse(homeserver)
                admin_token = await ensure_hub_admin(config, homeserver)
                provisioning = Homeserver(config.homeserver_url, session, admin_token=admin_token, as_token=secrets.read_secret(
                    config.paths.secrets_dir, secrets.APPSERVICE_AS_TOKEN))
                await provisioning.register_appservice_user(BOT_LOCALPART)
                await provisioning.lift_rate_limits(config.bot_user_id)
                # The admin account invites whole groups when the hub onboards them (rc_invites is
                # at Synapse's defaults for everyone else).
                await provisioning.lift_rate_limits(config.hub_admin_user_id)
            if config.live.enabled:
                await self.start_engines()
            app = create_app(config)
            runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=IDLE_CONNECTION_S)
            await runner.setup()
            await web.TCPSite(runner, config.hub.host, config.hub.port).start()
            gateway = GatewayThread(config, app[HUB])
            await gateway.start()
            write_run_state(config, self.synapse.pid, **{f"{p.name.lower()}_pid": p.pid for p in self.engines})
            tune_for_serving()
            self.say(f"Crossline hub:  {config.hub_url}")
            self.say(f"Homeserver:     {config.homeserver_public_url}")
            self.say(f"Data directory: {config.data_dir}")
            setup_link = issue_setup_link(app[HUB])
            if setup_link:
                self.say(f"Create the first administrator (one-time link, valid 24 hours):\n  {setup_link}")
            self.say("Ready. Press Ctrl-C to stop.")
            return await self._watch()
        except StartupError as error:
            self.say(str(error))
            return 1
        finally:
            if gateway is not None:
                await gateway.cleanup()
            if runner is not None:
                await runner.cleanup()
            self.stop_engines()
            self.stop_synapse()
            config.paths.run_state.unlink(missing_ok=True)

    async def _watch(self) -> int:
        while not self._stop.is_set():
            if self.synapse.poll() is not None:
                self.say(self.synapse_failure())
                self.say("The hub is stopping because Synapse is not running.")
                return 1
            for process in self.engines:
                if not process.running():
                    self.say(process.failure())
                    self.say(f"The hub is stopping because {process.name} is not running.")
                    return 1
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
        self.say("Stopping Crossline ...")
        return 0
