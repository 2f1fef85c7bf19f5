"""`crossline up` as an operator sees it: status, restart without loss, Synapse dying."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import HubStack, WebSession, free_port, run_cli, wait_for

pytestmark = pytest.mark.synapse

PASSWORD = "lifecycle admin password"


def status(stack: HubStack) -> tuple[int, dict]:
    result = run_cli("status", "--json", "--data-dir", str(stack.data_dir), check=False)
    return result.returncode, json.loads(result.stdout)


def test_status_restart_and_synapse_death(tmp_path):
    stack = HubStack.start(tmp_path / "data", server_name="lifecycle.test")
    try:
        code, report = status(stack)
        assert code == 0
        assert report["hub"]["healthy"] and report["synapse"]["healthy"]
        assert report["hub_url"] == stack.hub_url and report["homeserver_url"] == stack.homeserver_url
        assert report["server_name"] == "lifecycle.test"
        assert report["data_dir"] == str(stack.data_dir.resolve())
        assert report["synapse_config"].endswith("synapse/homeserver.yaml")

        assert stack.setup_link, "a fresh hub must offer a link to create the first administrator"
        admin = WebSession(stack.hub_url)
        path = stack.setup_link.removeprefix(stack.hub_url)
        status_code, page = admin.submit(path, path, {"username": "keeper", "password": PASSWORD, "password_again": PASSWORD})
        assert status_code == 200 and "Conflict lines" in page
        status_code, _, url = admin.request("POST", "/lines", {"csrf_token": _token(admin), "name": "Enguri",
                                                              "sides": "North\nSouth"})
        assert url.endswith("/lines/1")

        assert stack.stop() == 0, "".join(stack.output)
        assert "Stopping Crossline" in "".join(stack.output)
        code, report = status(stack)
        assert code == 1 and not report["hub"]["healthy"] and not report["synapse"]["healthy"]

        stack.restart()
        assert not stack.setup_link, "an administrator exists: no new set-up link"
        again = WebSession(stack.hub_url)
        status_code, page = again.submit("/login", "/login", {"username": "keeper", "password": PASSWORD})
        assert status_code == 200 and "Enguri" in page, "the line and the account must survive a restart"

        synapse_pid = json.loads((stack.data_dir / "run" / "state.json").read_text())["synapse_pid"]
        os.kill(synapse_pid, signal.SIGKILL)
        stack.process.wait(timeout=60)
        time.sleep(0.3)  # the drain thread takes the last lines
        rest = "".join(stack.output)
        assert stack.process.returncode == 1
        assert "Synapse stopped unexpectedly" in rest and "Last lines of" in rest
        assert "homeserver.log" in rest
    finally:
        if stack.process.poll() is None:
            stack.stop()


def _token(session: WebSession) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get("/lines")[1]).group(1)


def test_the_readme_run_command_brings_the_hub_up(tmp_path):
    """`./ops/hub` from the README: sets up the data directory, starts both, stops on SIGTERM."""
    root = Path(__file__).resolve().parents[1]
    data_dir = tmp_path / "readme-data"
    env = {**os.environ, "CROSSLINE_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [str(root / "ops" / "hub"), "--hub-port", str(free_port()), "--synapse-port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def healthy():
            if process.poll() is not None:
                raise AssertionError(process.stdout.read())
            result = run_cli("status", "--json", "--data-dir", str(data_dir), check=False)
            return result.returncode == 0 and json.loads(result.stdout)
        report = wait_for(healthy, timeout_s=120, what="./ops/hub to report both processes healthy")
        assert report["hub"]["healthy"] and report["synapse"]["healthy"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Create the first administrator" in output
