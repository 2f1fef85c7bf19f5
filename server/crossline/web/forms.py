"""Reading form fields: a bad value is an error that says what to choose again."""

from __future__ import annotations

from crossline.errors import InvalidInput


def form_int(value: object, what: str) -> int:
    try:
        return int(str(value))
    except ValueError as error:
        raise InvalidInput(f"{what} is not valid. Reload the page and choose again.") from error


def optional_form_int(value: object, what: str) -> int | None:
    return None if value in (None, "") else form_int(value, what)
