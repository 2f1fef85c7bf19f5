"""What the hub writes to its log: never a client's address.

aiohttp logs "Error handling request from <address>" when a connection goes wrong, and a
traceback's message can quote an address too. For a member whose location is the danger, an
address in a log file is enough to find her, so every log record the hub process makes is
scrubbed as it is made, before any handler sees it.
"""

from __future__ import annotations

import logging
import re
import sys

# IPv4; IPv6 in full (seven colons) or compressed (with "::"), so that times such as 12:30:45
# and names such as std::string are left alone.
_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (rf"(?<![\w:.])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:)*(?:{_H})?::(?:{_H}:)*(?:(?:\d{{1,3}}\.){{3}}\d{{1,3}}|{_H})?)"
         r"(?:%\w+)?(?![\w:])")
ADDRESS = re.compile(f"{_IPV4}|{_IPV6}")
HIDDEN = "[address not logged]"


def scrubbed(record: logging.LogRecord) -> logging.LogRecord:
    message = record.getMessage()
    clean = ADDRESS.sub(HIDDEN, message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        # A traceback is formatted later from exc_info; format it now, scrubbed.
        record.exc_text = ADDRESS.sub(HIDDEN, logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    return record


def scrub_client_addresses() -> None:
    """Every log record made in this process, by any logger and for any handler, is scrubbed
    as it is made. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "crossline_scrubs", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        return scrubbed(factory(*args, **kwargs))

    make_record.crossline_scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def log_to_stderr() -> None:
    """`crossline up`: warnings and errors to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    scrub_client_addresses()
