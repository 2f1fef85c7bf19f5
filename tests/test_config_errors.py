"""Bad configuration stops start-up with a message that names the problem."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from crossline.config import ConfigError, load_config, parse_config
from crossline.secrets import SecretError, read_secret
from crossline.setup import init_data_dir
from tests.support import run_cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("config") / "data"
    init_data_dir(directory, hub_port=1, synapse_port=2)  # ports rewritten per test
    return directory


def write_config(data_dir: Path, text: str) -> None:
    (data_dir / "crossline.toml").write_text(text)


@pytest.mark.parametrize(
    "raw, says",
    [
        ({"hub": {"prot": 8787}}, "unknown key 'prot' in [hub]"),
        ({"matrix": {}}, "unknown section [matrix]"),
        ({"hub": {"port": "8787"}}, "[hub] port must be a whole number"),
        ({"hub": {"port": 70000}}, "[hub] port must be between 1 and 65535"),
        ({"hub": {"host": "localhost"}}, "[hub] host must be an IP address"),
        ({"synapse": {"server_name": "Not A Name!"}}, "not a valid Matrix server name"),
        ({"invitations": {"lifetime_hours": 0}}, "lifetime_hours must be between 1 and 720"),
        ({"hub": {"quick_exit_url": "javascript:alert(1)"}}, "quick_exit_url must start with http"),
        ({"database": {"url": "mysql://x"}}, "[database] url must be"),
        ({"hub": {"port": 8008}, "synapse": {"port": 8008}}, "must differ"),
    ],
)
def test_bad_values_are_named(raw, says, tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, tmp_path, source="crossline.toml")
    assert says in str(error.value) and "crossline.toml" in str(error.value)


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "crossline.toml").write_text("[hub\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_missing_config_says_to_run_init(tmp_path):
    with pytest.raises(ConfigError, match="crossline init"):
        load_config(tmp_path / "nowhere")


def test_up_refuses_an_unknown_key_without_starting_anything(data_dir):
    original = (data_dir / "crossline.toml").read_text()
    try:
        write_config(data_dir, original.replace("[hub]\n", "[hub]\ncolour = 'red'\n"))
        result = run_cli("up", "--data-dir", str(data_dir), check=False)
        assert result.returncode == 2
        assert "crossline.toml: unknown key 'colour' in [hub]" in result.stderr
    finally:
        write_config(data_dir, original)


def test_up_refuses_a_port_in_use(data_dir):
    original = (data_dir / "crossline.toml").read_text()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        free_port = free.getsockname()[1]
        free.close()
        try:
            text = original.replace("port = 2\n", f"port = {busy}\n").replace("port = 1\n", f"port = {free_port}\n")
            write_config(data_dir, text)
            result = run_cli("up", "--data-dir", str(data_dir), check=False)
        finally:
            write_config(data_dir, original)
    assert result.returncode == 2
    assert f"Port {busy} on 127.0.0.1 is already in use" in result.stderr
    assert "[synapse] port" in result.stderr


def test_init_again_keeps_config_and_secrets(data_dir):
    before = {path.name: path.read_text() for path in (data_dir / "secrets").iterdir()}
    config_before = (data_dir / "crossline.toml").read_text()
    result = run_cli("init", "--data-dir", str(data_dir))
    assert "Updated" in result.stdout
    assert {path.name: path.read_text() for path in (data_dir / "secrets").iterdir()} == before
    assert (data_dir / "crossline.toml").read_text() == config_before


def test_secrets_are_private_and_a_loose_one_is_refused(data_dir):
    for path in (data_dir / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    for name in ("homeserver.yaml", "crossline-appservice.yaml", "signing.key"):
        assert (data_dir / "synapse" / name).stat().st_mode & 0o077 == 0, name
    loose = data_dir / "secrets" / "web_secret"
    loose.chmod(0o644)
    try:
        with pytest.raises(SecretError, match="chmod 600"):
            read_secret(data_dir / "secrets", "web_secret")
    finally:
        loose.chmod(0o600)
