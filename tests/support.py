"""Helpers for tests that use the real stack: `crossline up` (Synapse + hub) on loopback ports."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CROSSLINE = [sys.executable, "-m", "crossline.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: each is held until all are chosen, so no two are the same."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*CROSSLINE, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"crossline {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class HubStack:
    data_dir: Path
    hub_url: str
    homeserver_url: str
    server_name: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)
    setup_link: str = ""

    @classmethod
    def start(cls, data_dir: Path, server_name: str = "crossline.test", before_up=None) -> "HubStack":
        hub_port, synapse_port, turn_port = free_ports(3)
        run_cli("init", "--data-dir", str(data_dir), "--server-name", server_name,
                "--hub-port", str(hub_port), "--synapse-port", str(synapse_port), "--turn-port", str(turn_port))
        if before_up:
            before_up(data_dir)
        process = subprocess.Popen(
            [*CROSSLINE, "up", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        stack = cls(data_dir, f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{synapse_port}", server_name, process)
        stack._read_until_ready()
        return stack

    def _read_until_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), True)
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("crossline up exited before it was ready:\n" + "".join(self.output))
            self.output.append(line)
            match = re.search(r"(http://\S+/setup/\S+)", line)
            if match:
                self.setup_link = match.group(1)
            if line.startswith("Ready."):
                # Keep reading: a pipe nobody reads fills up and blocks the hub's next log line.
                threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
                return
        raise AssertionError("crossline up was not ready in time:\n" + "".join(self.output))

    def _drain(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.output.append(line)

    def restart(self) -> None:
        """Start `crossline up` again on the same data directory (after `stop`)."""
        self.output, self.setup_link = [], ""
        self.process = subprocess.Popen(
            [*CROSSLINE, "up", "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._read_until_ready()

    @property
    def synapse_socket(self) -> str:
        """Synapse itself, as the hub reaches it (for the admin API in tests): `matrix()` takes it."""
        return f"unix:{self.data_dir / 'synapse' / 'client.sock'}"

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.2)  # let the drain thread take the last lines
        return self.process.returncode


class WebSession:
    """A browser-like client for the hub's forms: keeps cookies, sends the CSRF token."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, method: str, path: str, data: dict | list | None = None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode(), response.url
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.url

    def get(self, path: str) -> tuple[int, str]:
        status, text, _ = self.request("GET", path)
        return status, text

    def submit(self, page_path: str, action: str, fields: dict | list) -> tuple[int, str]:
        """Load the page the form is on (for the CSRF token), then post the form."""
        status, page = self.get(page_path)
        assert status == 200, page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        status, text, _ = self.request("POST", action, [("csrf_token", token), *items])
        return status, text


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str):
        super().__init__("localhost", timeout=60)
        self._socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self._socket_path)


def matrix(base_url: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    """A Matrix request. `base_url` is an http URL, or `unix:PATH` for Synapse's own socket (what
    the hub uses: the admin API is not reachable through the gateway)."""
    data = json.dumps(body).encode() if body is not None else None
    if base_url.startswith("unix:"):
        connection = _UnixConnection(base_url.removeprefix("unix:"))
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def register_like_element(homeserver_url: str, localpart: str, password: str, token: str) -> tuple[int, dict]:
    """Registration as Element does it: user-interactive auth with m.login.registration_token."""
    body = {"username": localpart, "password": password, "initial_device_display_name": "test"}
    status, data = matrix(homeserver_url, "POST", "/_matrix/client/v3/register", body=body)
    assert status == 401, data
    session = data["session"]
    body["auth"] = {"type": "m.login.registration_token", "token": token, "session": session}
    status, data = matrix(homeserver_url, "POST", "/_matrix/client/v3/register", body=body)
    if status == 401 and "m.login.registration_token" in data.get("completed", []):
        body["auth"] = {"type": "m.login.dummy", "session": session}
        status, data = matrix(homeserver_url, "POST", "/_matrix/client/v3/register", body=body)
    return status, data


def login(homeserver_url: str, localpart: str, password: str) -> str:
    status, data = matrix(
        homeserver_url, "POST", "/_matrix/client/v3/login",
        body={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password},
    )
    assert status == 200, data
    return data["access_token"]


def wait_for(predicate, timeout_s: float = 30, interval_s: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"Timed out waiting for {what}")
