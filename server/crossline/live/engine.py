"""Janus and coturn as children of `crossline up`: their command lines, their logs (with every
address removed before it is written), and whether each answers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
from collections import deque
from pathlib import Path

import aiohttp

from crossline import secrets
from crossline.config import Config, ConfigError
from crossline.live.coturn import write_coturn_config
from crossline.live.interfaces import media_addresses, media_interfaces
from crossline.live.janus import PROTOCOL
from crossline.live.janus_config import MISSING_PACKAGES, write_janus_config
from crossline.logs import ADDRESS, HIDDEN

LOG_MAX_BYTES = 10_000_000  # then the log moves to .1 (one old copy kept)
STOP_TIMEOUT_S = 10


def _stop_when_parent_dies() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the hub process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def check_packages(config: Config) -> None:
    """Before anything starts: `[live] enabled` needs Debian's janus and coturn."""
    missing = [path for path in (config.live.janus_binary, config.live.turnserver_binary) if not os.access(path, os.X_OK)]
    if missing:
        raise ConfigError(f"Live sessions are enabled but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not installed. "
                          + MISSING_PACKAGES.format(config_file=config.paths.config_file))


def write_engine_configs(config: Config) -> list[str]:
    """Both engines' configuration files; returns the interfaces Janus offers media on."""
    secrets_dir = config.paths.secrets_dir
    interfaces = media_interfaces(config)
    write_janus_config(config, secrets.read_secret(secrets_dir, secrets.JANUS_API_SECRET),
                       secrets.read_secret(secrets_dir, secrets.JANUS_ADMIN_SECRET), interfaces)
    write_coturn_config(config, secrets.read_secret(secrets_dir, secrets.TURN_SHARED_SECRET),
                        media_addresses(interfaces))
    return interfaces


class EngineProcess:
    """One supervised child whose output the hub writes to its log file, scrubbed."""

    def __init__(self, name: str, argv: list[str], workdir: Path, log_path: Path):
        self.name, self.argv, self.workdir, self.log_path = name, argv, workdir, log_path
        self.process: subprocess.Popen | None = None
        self._last_lines: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Its own process group, so Ctrl-C reaches only the hub, which stops it in order; and
            # it dies with the hub if the hub is killed outright.
            start_new_session=True, preexec_fn=_stop_when_parent_dies,
        )
        self._reader = threading.Thread(target=self._copy_log, name=f"crossline-{self.name}-log", daemon=True)
        self._reader.start()

    def _copy_log(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        log = self._open_log()
        try:
            for raw in self.process.stdout:
                line = ADDRESS.sub(HIDDEN, raw.decode("utf-8", "replace"))
                self._last_lines.append(line)
                log.write(line)
                log.flush()
                if log.tell() > LOG_MAX_BYTES:
                    log.close()
                    os.replace(self.log_path, self.log_path.with_name(self.log_path.name + ".1"))
                    log = self._open_log()
        finally:
            log.close()

    def _open_log(self):
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def failure(self) -> str:
        status = self.process.poll() if self.process else None
        if self._reader is not None:
            self._reader.join(2)  # the last lines it printed before it stopped
        state = "stopped" if status is not None else "did not become ready"
        return (f"{self.name} {state}{f' (exit status {status})' if status is not None else ''}.\n"
                f"Last lines of {self.log_path}:\n{''.join(self._last_lines) or '(nothing printed)'}\n")

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(2)


def janus_process(config: Config) -> EngineProcess:
    return EngineProcess("Janus", [config.live.janus_binary, "--configs-folder", str(config.paths.janus_dir)],
                         config.paths.janus_dir, config.paths.janus_log)


def coturn_process(config: Config) -> EngineProcess:
    return EngineProcess("coturn", [config.live.turnserver_binary, "-c", str(config.paths.coturn_config)],
                         config.paths.coturn_dir, config.paths.coturn_log)


# --- whether each answers (for start-up and `crossline status`) -----------------------------------

def janus_answers(socket_path: Path, timeout_s: float = 3) -> bool:
    """Janus's API answers `info` on its WebSocket socket (no secret is needed for that one
    request). Asked from a thread of its own, so callers with or without an event loop can use it."""

    async def ask() -> bool:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket_path))) as http, \
                http.ws_connect("ws://janus/", protocols=(PROTOCOL,)) as sock:
            await sock.send_str(json.dumps({"janus": "info", "transaction": "status"}))
            return (await sock.receive_json(timeout=timeout_s)).get("janus") == "server_info"

    def run() -> bool:
        try:
            return asyncio.run(asyncio.wait_for(ask(), timeout_s))
        except (OSError, ValueError, TypeError, TimeoutError, aiohttp.ClientError):
            return False

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


STUN_MAGIC = 0x2112A442


def turn_answers(host: str, port: int, timeout_s: float = 3) -> bool:
    """coturn answers a STUN binding request on its UDP port."""
    transaction = os.urandom(12)
    request = (0x0001).to_bytes(2, "big") + (0).to_bytes(2, "big") + STUN_MAGIC.to_bytes(4, "big") + transaction
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.settimeout(timeout_s)
            probe.sendto(request, (host, port))
            reply = probe.recv(2048)
    except OSError:
        return False
    return len(reply) >= 20 and reply[:2] == (0x0101).to_bytes(2, "big") and reply[8:20] == transaction
