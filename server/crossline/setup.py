"""`crossline init`: the data directory, its configuration, secrets and Synapse files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from crossline import secrets
from crossline.config import Config, ConfigError, load_config, parse_config, render_config_toml
from crossline.synapse.files import write_synapse_files


def init_data_dir(
    data_dir: Path,
    server_name: str | None = None,
    hub_port: int | None = None,
    synapse_port: int | None = None,
    turn_port: int | None = None,
) -> tuple[Config, bool]:
    """Create (or complete) a data directory. Returns the config and whether it was new.

    Running it again keeps the existing configuration, secrets and data; it rewrites only
    Synapse's generated files, so a template change reaches an existing hub.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_file = data_dir / "crossline.toml"
    created = not config_file.exists()
    if created:
        config = parse_config({}, data_dir)
        config = replace(
            config,
            synapse=replace(config.synapse, **_given(server_name=server_name, port=synapse_port)),
            hub=replace(config.hub, **_given(port=hub_port)),
            live=replace(config.live, **_given(turn_port=turn_port)),
        )
        # Validate what we are about to write with the same rules as a loaded file.
        text = render_config_toml(config)
        secrets.write_private_file(config_file, text)
        config = load_config(data_dir)
    else:
        config = load_config(data_dir)
        if server_name and server_name != config.synapse.server_name:
            raise ConfigError(
                f"{config_file} already sets server_name = {config.synapse.server_name!r}; "
                "a Matrix server name cannot change once accounts exist."
            )
    hub_has_data = bool(config.database.url) or config.paths.hub_database.exists()
    made = secrets.create_missing_secrets(config.paths.secrets_dir, secrets.GENERATED_AT_INIT, hub_has_data)
    if hub_has_data and secrets.REGISTRATION_TOKEN_KEY in made:
        print(f"crossline init: {config.paths.secret(secrets.REGISTRATION_TOKEN_KEY)} was missing and is new: "
              "invitations issued before now no longer work. Issue them again (or restore the old key from "
              "your backup before anyone uses the hub).", file=sys.stderr)
    write_synapse_files(config)
    _generate_signing_key(config)
    make_private(data_dir)
    return config, created


def make_private(data_dir: Path) -> None:
    """Everything under the data directory readable by this user only: directories 0700, files
    0600. A directory made by an older version, or copied with other modes, is tightened here."""
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.is_symlink():
            continue
        wanted = 0o700 if path.is_dir() else 0o600
        if path.stat().st_mode & 0o777 != wanted:
            path.chmod(wanted)


def _given(**values: object) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}


def _generate_signing_key(config: Config) -> None:
    if (config.paths.synapse_dir / "signing.key").exists():
        return
    result = subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config.paths.synapse_config), "--generate-keys"],
        capture_output=True,
        text=True,
        cwd=config.paths.synapse_dir,
    )
    if result.returncode != 0:
        raise ConfigError(f"Synapse could not create its signing key:\n{result.stderr[-2000:]}")
    (config.paths.synapse_dir / "signing.key").chmod(0o600)
