"""Reading what a browser or client sent: a body or a value that cannot be read is an error that
says what to fix (400 or 413), never a server error, and nothing else is touched."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from crossline.errors import CrosslineError, InvalidInput

# Ids and numbers are stored as signed 64-bit integers: anything larger names nothing.
MAX_ID = 2**63 - 1
_MAX_DIGITS = len(str(MAX_ID))

# What aiohttp raises on a body it cannot parse: undecodable text or charset (ValueError,
# LookupError), multipart without a boundary or with a bad part (ValueError, RuntimeError,
# TypeError, HttpProcessingError), JSON too deep or with a number of thousands of digits.
_UNREADABLE = (ValueError, LookupError, RuntimeError, TypeError, RecursionError, HttpProcessingError)


class TooLarge(CrosslineError):
    status = 413


def too_large(limit: int) -> TooLarge:
    if limit > 1024 * 1024:
        return TooLarge("That form is too large to accept: screenshots can be at most 5 MB each, three in all.")
    return TooLarge(f"That form is too large to accept (at most {limit // 1024} KB). Shorten it and send it again.")


async def read_form(request: web.Request) -> MultiDictProxy:
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge as error:
        raise too_large(request.client_max_size) from error
    except _UNREADABLE as error:
        raise InvalidInput("This form could not be read (it was not sent as a web form in UTF-8). "
                           "Reload the page and send it again.") from error


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except web.HTTPRequestEntityTooLarge as error:
        raise too_large(request.client_max_size) from error
    except (json.JSONDecodeError, *_UNREADABLE) as error:
        raise InvalidInput("The request body must be JSON in UTF-8, with numbers of at most "
                           f"{_MAX_DIGITS} digits.") from error


def bounded_int(value: object) -> int | None:
    """`value` as an id-sized integer (a JSON number that is not true/false, or decimal text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().removeprefix("-").removeprefix("+")
        if not text.isdecimal() or len(text) > _MAX_DIGITS:
            return None
        value = int(value)
    if isinstance(value, int) and -MAX_ID <= value <= MAX_ID:
        return value
    return None


def form_int(value: object, what: str) -> int:
    number = bounded_int(value)
    if number is None:
        raise InvalidInput(f"{what} is not valid. Reload the page and choose again.")
    return number


def optional_form_int(value: object, what: str) -> int | None:
    return None if value in (None, "") else form_int(value, what)
