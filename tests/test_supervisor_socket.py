"""`crossline up` and a Synapse left running by a hub that was killed (Synapse listens on a socket)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from crossline.config import ConfigError
from crossline.supervisor import socket_in_use, wait_until_socket_free


async def test_start_waits_for_the_old_synapse_to_let_go_of_its_socket(tmp_path):
    path = tmp_path / "client.sock"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(path))
    old.listen()
    assert socket_in_use(path)
    asyncio.get_running_loop().call_later(0.5, old.close)
    await wait_until_socket_free(path, timeout_s=30, config_file=tmp_path / "crossline.toml")
    assert not socket_in_use(path) and path.exists(), "a socket file nobody listens on is no obstacle"


async def test_a_synapse_that_does_not_stop_is_a_clear_error(tmp_path):
    path = tmp_path / "client.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        with pytest.raises(ConfigError, match="Another Synapse is still listening"):
            await wait_until_socket_free(path, timeout_s=0, config_file=tmp_path / "crossline.toml")
