"""`crossline audit`: the moderation record, checked and read without SQL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossline.config import load_config

MAX_HEAD_FILE = 1_000_000  # a head is one line; a file of many is still small
LIST_LIMIT = 50


def add_parsers(commands, data_dir_argument) -> None:
    audit = commands.add_parser("audit", help="The moderation audit log.")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="Check that no entry was changed, removed or reordered, against the hub's key and signed heads.")
    verify.add_argument("--head", type=Path, action="append", default=[], metavar="FILE",
                        help="A file holding a signed head (the text of a message from the moderators' room, or the "
                             "head downloaded from the moderators' pages). May be given more than once.")
    data_dir_argument(verify)
    listing = audit_commands.add_parser(
        "list", help="The log's entries in words, newest first: number, UTC time, who, what, case, details.")
    listing.add_argument("--case", metavar="N", help="Only the entries of this case.")
    listing.add_argument("--moderator", metavar="WHO", help="Only what she did: her Matrix id (@name:server) or "
                         "member number; or reporter, reported_person, matrix, bot, hub, quorum, system.")
    listing.add_argument("--since", metavar="YYYY-MM-DD", help="From the start of this day (UTC).")
    listing.add_argument("--until", metavar="YYYY-MM-DD", help="To the end of this day (UTC).")
    listing.add_argument("--limit", metavar="N", help=f"At most N entries (default {LIST_LIMIT}, at most 1000).")
    listing.add_argument("--before", metavar="N", help="Only entries numbered below N: to continue a listing.")
    data_dir_argument(listing)


def offline_hub(data_dir: Path, migrated: bool = True):
    """The hub's storage and keys, without its homeserver: for commands run beside it.
    migrated=False: the database as it is, for a command that only reads."""
    from crossline.clock import SystemClock, random_token
    from crossline.services.hub import Hub
    from crossline.storage.db import create_database_engine, migrate

    config = load_config(data_dir)
    engine = create_database_engine(config.database_url)
    if migrated:
        migrate(engine)
    return Hub(config, engine, homeserver=None, clock=SystemClock(), new_token=random_token,  # type: ignore[arg-type]
               room_templates={})


def run(args: argparse.Namespace, data_dir: Path) -> int:
    if args.audit_command == "verify":
        return cmd_verify(data_dir, args.head)
    if args.audit_command == "list":
        return cmd_list(data_dir, args)
    return 2


def _read_heads(files: list[Path]) -> list[str] | str:
    texts = []
    for path in files:
        try:  # read, not stat: a device or a pipe has no size to check first
            with open(path, "rb") as handle:
                data = handle.read(MAX_HEAD_FILE + 1)
        except OSError as error:
            return f"cannot read {path}: {error.strerror}."
        if len(data) > MAX_HEAD_FILE:
            return f"{path} is too large to be a file of signed heads (at most {MAX_HEAD_FILE} bytes)."
        texts.append(data.decode("utf-8", errors="replace"))
    return texts


def not_checked(error: Exception) -> str:
    """Why the record could not be checked, as a sentence (never a traceback)."""
    from crossline.secrets import SecretError

    if isinstance(error, SecretError):
        return str(error)
    return (f"the database cannot be read ({type(error).__name__}); is it reachable, and has the hub run since "
            "its last upgrade?")


def cmd_verify(data_dir: Path, head_files: list[Path]) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from crossline.domain.audit_heads import read
    from crossline.secrets import SecretError
    from crossline.services import audit_heads

    texts = _read_heads(head_files)
    if isinstance(texts, str):
        print(f"crossline audit verify: {texts}", file=sys.stderr)
        return 2
    parsed = [read(text) for text in texts]  # each file read once
    for path, (good, bad) in zip(head_files, parsed, strict=True):
        if not good and not bad:
            print(f"crossline audit verify: {path} holds no signed head (a line beginning "
                  "'crossline-audit-head.v1.'). Copy the whole message from the moderators' room.", file=sys.stderr)
            return 2
    hub = offline_hub(data_dir, migrated=False)  # the database as it is: checking it never changes it
    try:
        given, not_used = [], []
        for path, (good, bad) in zip(head_files, parsed, strict=True):
            usable, unusable = audit_heads.mine(hub, good, bad)
            if not usable:  # she asked for a check against it: no verdict without it
                print(f"crossline audit verify: no head in {path} can be used: {'; '.join(unusable)}.",
                      file=sys.stderr)
                return 2
            given += usable
            not_used += unusable
        checked = audit_heads.verify(hub, given, not_used)
    except (SQLAlchemyError, SecretError) as error:
        print(f"crossline audit verify: not checked: {not_checked(error)}", file=sys.stderr)
        return 2
    finally:
        hub.engine.dispose()
    verdict = checked.verdict
    for why in checked.unusable:
        print(f"Not used: {why}.", file=sys.stderr)
    if verdict.problems:
        print(f"AUDIT LOG BROKEN: {verdict.problems[0]}.", file=sys.stderr)
        for problem in verdict.problems[1:]:
            print(f"Also: {problem}.", file=sys.stderr)
        for note in verdict.notes:
            print(note, file=sys.stderr)
        print("What to do: trust nothing in the log from the first entry named on; tell the other moderators, keep "
              "the heads from the moderators' room, and compare the entries named with a backup of the database.",
              file=sys.stderr)
        return 1
    against = f" It holds the latest signed head known (entry {verdict.head_seq})." if verdict.head_seq else ""
    keyed = " and authenticated by the hub's key" if verdict.authenticated else ""
    print(f"Audit log verifies: {verdict.entries} entries, each chained to the one before{keyed}.{against}")
    for note in verdict.notes:
        print(note)
    return 0


def record_status(data_dir: Path) -> dict:
    """The moderation record for `crossline status`, checked as `audit verify` checks it against
    the head the hub keeps, reading only: nothing migrated, written or created. A full check is
    cheap (a few microseconds an entry)."""
    from sqlalchemy.exc import SQLAlchemyError

    from crossline.secrets import SecretError
    from crossline.services import audit_heads

    config = load_config(data_dir)
    if not config.database.url and not config.paths.hub_database.exists():
        return {"verifies": None, "line": "Audit log: no database yet (the hub has not run)."}
    hub = offline_hub(data_dir, migrated=False)
    try:
        checked = audit_heads.verify(hub)
    except (SQLAlchemyError, SecretError) as error:
        return {"verifies": None, "line": f"Audit log: not checked: {not_checked(error)}"}
    finally:
        hub.engine.dispose()
    verdict = checked.verdict
    status = {"verifies": verdict.verifies, "entries": verdict.entries, "head_kept_at": verdict.head_seq,
              "problems": verdict.problems, "unusable_heads": checked.unusable}
    if not verdict.verifies:
        return {**status, "line": f"Audit log: BROKEN: {verdict.problems[0]}. Run `crossline audit verify`."}
    kept = f"head kept at entry {verdict.head_seq}" if verdict.head_seq else "no head kept yet"
    unusable = f"; not used: {checked.unusable[0]}" if checked.unusable else ""
    return {**status, "line": f"Audit log: verifies, {verdict.entries} entries, {kept}{unusable}."}


def _printable(text: str) -> str:
    """Stored text as it may be printed: a hand-written row cannot send the terminal escape codes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_list(data_dir: Path, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from crossline.domain.audit_listing import parse_filters
    from crossline.errors import InvalidInput
    from crossline.services import audit_listing

    try:
        filters = parse_filters(case=args.case, moderator=args.moderator, since=args.since, until=args.until,
                                limit=args.limit, before=args.before, default_limit=LIST_LIMIT)
        hub = offline_hub(data_dir, migrated=False)  # reading only: the database as it is
        try:
            listing = audit_listing.for_operator(hub, filters)
        finally:
            hub.engine.dispose()
    except InvalidInput as error:
        print(f"crossline audit list: {error.message}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(f"crossline audit list: not read: {not_checked(error)}", file=sys.stderr)
        return 2
    if not listing.rows:
        print("No entries match.")
        return 0
    lines = [(str(r.seq), r.at, _printable(r.who), _printable(r.what), f"case {r.case_id}" if r.case_id else "-",
              _printable(r.details)) for r in listing.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        print("  ".join([line[0].rjust(widths[0]), *(v.ljust(w) for v, w in zip(line[1:5], widths[1:], strict=True)),
                         line[5]]).rstrip())
    if listing.older:
        print(f"Older entries match too: continue with --before {listing.older}.")
    return 0
