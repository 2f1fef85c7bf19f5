"""The `crossline` command."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import sys
import urllib.request
from pathlib import Path

from crossline import cli_audit
from crossline.config import ConfigError, default_data_dir, load_config
from crossline.secrets import SecretError, check_secrets_present


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Where Crossline keeps its config, secrets and data "
        "(default: $CROSSLINE_DATA_DIR, else $XDG_DATA_HOME/crossline, else ~/.local/share/crossline).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossline", description="Crossline hub: Synapse, hardened, plus consultations.")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="Create the data directory: config, secrets, Synapse config.")
    _data_dir_argument(init)
    init.add_argument("--server-name", help="Matrix server name (default crossline.local). Cannot change later.")
    init.add_argument("--hub-port", type=int, help="Port of the hub's web pages (default 8787).")
    init.add_argument("--synapse-port", type=int, help="Port of Synapse's client API (default 8008).")
    init.add_argument("--turn-port", type=int, help="Port of coturn, for live sessions (default 3478).")

    up = commands.add_parser("up", help="Run Synapse and the hub until Ctrl-C.")
    _data_dir_argument(up)

    status = commands.add_parser("status", help="Where the hub and homeserver are, and whether they answer.")
    _data_dir_argument(status)
    status.add_argument("--json", action="store_true", help="Print JSON.")

    setup_link = commands.add_parser("setup-link", help="Print a new one-time link to create the first administrator.")
    _data_dir_argument(setup_link)

    analyze = commands.add_parser("analyze", help="Analyse a Pol.is export folder (comments.csv, votes.csv).")
    analyze.add_argument("folder", type=Path, help="The export folder.")
    analyze.add_argument("--json", action="store_true", help="Print JSON (every participant's group by Pol.is id).")
    analyze.add_argument("--sides", type=Path, help="CSV with columns participant,side: adds bridging across sides.")
    analyze.add_argument("--min-group-size", type=int, default=5,
                         help="Figures about fewer people than this are not shown (default 5, at least 3).")
    analyze.add_argument("--seed", type=int, default=0, help="Seed of the analysis's random start (default 0).")

    cli_audit.add_parsers(commands, _data_dir_argument)

    verify = commands.add_parser("verify", help="Check a released report (signed JSON, PDF, HTML or Markdown copy).")
    verify.add_argument("report", type=Path, help="The report file.")
    verify.add_argument("--signature", type=Path, help="A copy's separate signature file, if it came with one.")
    verify.add_argument("--fingerprint", help="The hub key fingerprint you trust (as the hub publishes it). "
                        "Without it, the key of the hub in the data directory, if there is one here.")
    _data_dir_argument(verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Every file Crossline or its Synapse child creates (databases, logs, the bot's store) is
    # private to this user, whatever the shell's umask.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        return cmd_analyze(args)
    if args.command == "verify":
        return cmd_verify(args)
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    try:
        if args.command == "init":
            return cmd_init(data_dir, args)
        if args.command == "up":
            return cmd_up(data_dir)
        if args.command == "status":
            return cmd_status(data_dir, args.json)
        if args.command == "setup-link":
            return cmd_setup_link(data_dir)
        if args.command == "audit":
            return cli_audit.run(args, data_dir)
    except (ConfigError, SecretError) as error:
        print(f"crossline: {error}", file=sys.stderr)
        return 2
    return 2


def cmd_init(data_dir: Path, args: argparse.Namespace) -> int:
    from crossline.setup import init_data_dir

    config, created = init_data_dir(data_dir, args.server_name, args.hub_port, args.synapse_port, args.turn_port)
    verb = "Created" if created else "Updated"
    print(f"{verb} Crossline data directory {config.data_dir}")
    print(f"  config:         {config.paths.config_file}")
    print(f"  Synapse config: {config.paths.synapse_config}")
    print(f"Next: crossline up --data-dir {config.data_dir}")
    return 0


def cmd_up(data_dir: Path) -> int:
    from crossline.logs import log_to_stderr
    from crossline.supervisor import Supervisor

    log_to_stderr()
    config = load_config(data_dir)
    check_secrets_present(config.paths.secrets_dir)  # before Synapse starts, not halfway
    return asyncio.run(Supervisor(config).run())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path):
        super().__init__("localhost", timeout=3)
        self._socket_path = str(socket_path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(3)
        self.sock.connect(self._socket_path)


def _socket_answers(socket_path: Path, path: str) -> bool:
    """Synapse listens only on its socket (behind the gateway)."""
    connection = _UnixHTTPConnection(socket_path)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def status_report(data_dir: Path) -> dict:
    config = load_config(data_dir)
    state = {}
    if config.paths.run_state.exists():
        state = json.loads(config.paths.run_state.read_text(encoding="utf-8"))
    return {
        "hub_url": config.hub_url,
        "homeserver_url": config.homeserver_public_url,
        "server_name": config.synapse.server_name,
        "data_dir": str(config.data_dir),
        "synapse_config": str(config.paths.synapse_config),
        "hub": {"healthy": _answers(f"http://{config.hub.host}:{config.hub.port}/_crossline/health"), "pid": state.get("hub_pid")},
        "gateway": {"healthy": _answers(f"{config.gateway_url}/health")},
        "synapse": {"healthy": _socket_answers(config.paths.synapse_socket, "/health"), "pid": state.get("synapse_pid")},
        **(_live_status(config, state) if config.live.enabled else {}),
    }


def _live_status(config, state: dict) -> dict:
    from crossline.live.engine import janus_answers, turn_answers

    return {
        "janus": {"healthy": janus_answers(config.paths.janus_socket), "pid": state.get("janus_pid")},
        "coturn": {"healthy": turn_answers(config.live.turn_host, config.live.turn_port), "pid": state.get("coturn_pid")},
    }


def cmd_status(data_dir: Path, as_json: bool) -> int:
    report = {**status_report(data_dir), "audit_log": cli_audit.record_status(data_dir)}
    processes = [part for part in ("hub", "gateway", "synapse", "janus", "coturn") if part in report]
    healthy = all(report[part]["healthy"] for part in processes)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for key in ("hub_url", "homeserver_url", "server_name", "data_dir", "synapse_config"):
            print(f"{key:15} {report[key]}")
        for process in processes:
            print(f"{process:15} {'healthy' if report[process]['healthy'] else 'NOT answering'}")
        print(report["audit_log"]["line"])
    return 0 if healthy else 1


def cmd_setup_link(data_dir: Path) -> int:
    from crossline.services.onboarding import issue_setup_link

    hub = cli_audit.offline_hub(data_dir)
    link = issue_setup_link(hub)
    if link is None:
        print("An administrator already exists; log in at " + hub.config.hub_url + "/login")
        return 1
    print(link)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from crossline.analysis.analysis import AnalysisError, Settings, analyze
    from crossline.analysis.output import to_data, to_text
    from crossline.analysis.polis_export import ExportError, read_polis_export, read_sides

    try:
        settings = Settings(min_cohort=args.min_group_size, seed=args.seed)
        conversation = read_polis_export(args.folder)
        sides = read_sides(args.sides) if args.sides else None
    except (AnalysisError, ExportError) as error:
        print(f"crossline analyze: {error}", file=sys.stderr)
        return 2
    result = analyze(conversation.table, sides, settings)
    if args.json:
        print(json.dumps(to_data(result, conversation.texts), ensure_ascii=False, indent=1))
    else:
        print(to_text(result, conversation.texts), end="")
    return 0


def _hub_records(data_dir: Path):
    """This hub's report key fingerprint, (that fingerprint, the lookup of its releases) and, when
    there is no key, why: as far as this user can read them (a negotiator's own computer has no
    hub). Never creates anything."""
    from crossline.reports.signing import fingerprint, signing_key_from_secret
    from crossline.secrets import REPORT_SIGNING_KEY, read_secret

    if not data_dir.is_dir():
        return None, None, f"no hub data directory at {data_dir}, and no --fingerprint"
    try:
        config = load_config(data_dir)
        secret = read_secret(config.paths.secrets_dir, REPORT_SIGNING_KEY)
    except (ConfigError, SecretError, OSError, ValueError) as error:
        return None, None, (f"the hub's report key in {data_dir} cannot be read ({error}); run the check as the "
                            "hub's user, or give --fingerprint")
    hub_key = fingerprint(bytes(signing_key_from_secret(secret).verify_key))
    if config.database.url is None and not config.paths.hub_database.exists():
        return hub_key, None, ""

    def history(consultation_id: int) -> list:
        from sqlalchemy.exc import SQLAlchemyError

        from crossline.services.reports import history as releases_of
        from crossline.storage.db import create_database_engine

        try:
            return releases_of(create_database_engine(config.database_url), consultation_id)
        except (SQLAlchemyError, ImportError) as error:  # unreachable or no driver: no records
            raise LookupError(error) from None

    return hub_key, (hub_key, history), ""


MAX_REPORT_FILE = 64 * 2**20  # a report's PDF is well under 1 MiB


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, or None past MAX_REPORT_FILE (a device or a huge file is not read whole)."""
    with path.open("rb") as file:
        data = file.read(MAX_REPORT_FILE + 1)
    return data if len(data) <= MAX_REPORT_FILE else None


def cmd_verify(args: argparse.Namespace) -> int:
    """Never a traceback: any file, however malformed, gets "NOT VALID" and the reason."""
    from crossline.reports.copies import verify_copy
    from crossline.reports.verdict import check

    data_dir = (args.data_dir or default_data_dir()).expanduser()
    try:
        data = _read_bounded(args.report)
        detached = _read_bounded(args.signature) if args.signature else None
    except OSError as error:
        print(f"NOT VALID: cannot read {error.filename}: {error.strerror}.", file=sys.stderr)
        return 2
    if data is None or (args.signature and detached is None):
        print(f"NOT VALID: larger than any report ({MAX_REPORT_FILE // 2**20} MiB at most).", file=sys.stderr)
        return 1
    hub_key, records, no_key = _hub_records(data_dir)
    trusted = {}
    if hub_key:
        trusted[hub_key] = f"this hub's key ({data_dir})"
    if args.fingerprint:
        trusted[args.fingerprint] = "the key whose fingerprint you gave"
    verdict = check(lambda: verify_copy(data, detached), trusted, records, no_key)
    print("\n".join(verdict.lines), file=sys.stdout if verdict.valid else sys.stderr)
    return 0 if verdict.valid else 1


if __name__ == "__main__":
    sys.exit(main())
