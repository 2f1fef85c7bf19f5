"""Typed domain errors. The web layer translates them to HTTP once, in a middleware; the
message is shown to the person, so it says what went wrong and what to do."""


class CrosslineError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(CrosslineError):
    status = 400


class NotAllowed(CrosslineError):
    status = 403


class NotFound(CrosslineError):
    status = 404


class Conflict(CrosslineError):
    status = 409


class Gone(CrosslineError):
    """Something that existed but can no longer be used: a used or expired invitation."""

    status = 410


class HomeserverError(CrosslineError):
    """Synapse refused or could not be reached."""

    status = 502
