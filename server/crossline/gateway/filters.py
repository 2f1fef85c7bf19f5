"""What the gateway changes in a client's request or Synapse's answer: pure functions on paths
and JSON values, no I/O.

Paths are matched on the raw path exactly as it is forwarded (Synapse matches the same raw
string), and generously: a path matched here that Synapse would not route is only filtered for
nothing, while one Synapse routes can never slip past.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

KEY_FIELDS = ("device_keys", "master_keys", "self_signing_keys", "user_signing_keys", "one_time_keys")
REGISTRATION_TOKEN_STAGE = "m.login.registration_token"


class Route(Enum):
    PASS = "pass"
    KEYS_QUERY = "keys_query"
    KEYS_CLAIM = "keys_claim"
    REGISTER = "register"
    REGISTER_AVAILABLE = "register_available"
    TOKEN_VALIDITY = "token_validity"
    LOGIN = "login"
    ROOM_REPORT = "room_report"
    SEND_TO_DEVICE = "send_to_device"
    ADMIN = "admin"
    TOKEN_FALLBACK = "token_fallback"
    USER_INTERACTIVE_AUTH = "user_interactive_auth"
    DISPLAY_NAME = "display_name"
    PROFILE_FIELD = "profile_field"
    MEDIA = "media"


_ROUTES = (
    (Route.KEYS_QUERY, "POST", re.compile(r"^/_matrix/client/(?:.*/)?keys/query$")),
    (Route.KEYS_CLAIM, "POST", re.compile(r"^/_matrix/client/(?:.*/)?keys/claim$")),
    (Route.REGISTER, "POST", re.compile(r"^/_matrix/client/(?:.*/)?register$")),
    (Route.REGISTER_AVAILABLE, "GET", re.compile(r"^/_matrix/client/(?:.*/)?register/available$")),
    (Route.TOKEN_VALIDITY, "GET",
     re.compile(r"^/_matrix/client/(?:.*/)?register/m\.login\.registration_token/validity$")),
    (Route.LOGIN, "POST", re.compile(r"^/_matrix/client/(?:.*/)?login$")),
    (Route.SEND_TO_DEVICE, "PUT", re.compile(r"^/_matrix/client/(?:.*/)?sendToDevice/[^/]*/[^/]*$")),
)
# Requests Synapse guards with user-interactive auth, whose password stage checks the password of
# whatever account it names (/register is its own route above).
_USER_INTERACTIVE_AUTH = re.compile(
    r"^/_matrix/client/(?:.*/)?(?:account/password|account/deactivate|account/3pid/add|delete_devices|devices/[^/]*"
    r"|keys/device_signing/upload|login/get_token)$")
# Synapse's admin API is for the hub, which reaches Synapse through its socket; from outside it
# is only a surface to attack. Matched on the path as Twisted walks it (segments unquoted, empty
# ones dropped), so no spelling of it gets through.
_ADMIN_PREFIX = ("_synapse", "admin")
# Synapse's web page for the registration-token stage takes the token as typed, so the gateway
# could not turn a code into Synapse's token there, and Synapse's own token (from a copy of its
# database) would pass. Clients use the JSON stage; the hub's join page needs neither.
_TOKEN_FALLBACK = ("auth", "m.login.registration_token", "fallback")


def _contains(segments: list[str], run: tuple[str, ...]) -> bool:
    return any(tuple(segments[i:i + len(run)]) == run for i in range(len(segments)))
# Element's "Report room" and "Decline and report" (MSC4151). Synapse serves the stable path only;
# the unstable one means the same and is passed on as the stable one. Not /report/{eventId}.
_ROOM_REPORT = re.compile(
    r"^/_matrix/client/(?P<version>v3|unstable/org\.matrix\.msc4151)/rooms/(?P<room>[^/]*)/report$")
STABLE_ROOM_REPORT = "/_matrix/client/v3/rooms/{room}/report"


@dataclass(frozen=True)
class Match:
    route: Route
    upstream_path: str  # the raw path to send to Synapse
    room_id: str = ""
    media: tuple[str, str] = ("", "")  # a media download's server name and media id


def classify(method: str, raw_path: str) -> Match:
    """`raw_path` without its query string."""
    segments = [unquote(segment) for segment in raw_path.split("/") if segment]
    if tuple(segments[:2]) == _ADMIN_PREFIX:
        return Match(Route.ADMIN, raw_path)
    if _contains(segments, _TOKEN_FALLBACK):
        return Match(Route.TOKEN_FALLBACK, raw_path)
    if method == "PUT" and is_display_name_change(segments):
        return Match(Route.DISPLAY_NAME, raw_path)
    if method in ("PUT", "DELETE") and is_free_profile_field(segments):
        return Match(Route.PROFILE_FIELD, raw_path)
    if method == "POST":
        report = _ROOM_REPORT.match(raw_path)
        if report:
            upstream = STABLE_ROOM_REPORT.format(room=report["room"])
            return Match(Route.ROOM_REPORT, upstream, unquote(report["room"]))
    # Synapse answers HEAD as it answers GET (the status alone would tell).
    method = "GET" if method == "HEAD" else method
    media = media_asked_for(segments) if method == "GET" else None
    if media is not None:
        return Match(Route.MEDIA, raw_path, media=media)
    for route, route_method, pattern in _ROUTES:
        if method == route_method and pattern.match(raw_path):
            return Match(route, raw_path)
    if method != "GET" and _USER_INTERACTIVE_AUTH.match(raw_path):
        return Match(Route.USER_INTERACTIVE_AUTH, raw_path)
    return Match(Route.PASS, raw_path)


def is_display_name_change(segments: list[str]) -> bool:
    """`PUT /_matrix/client/{any version}/profile/{user}/displayname`, as Synapse routes it after
    unquoting each segment (so "display%6Eame" is one too)."""
    return segments[:2] == ["_matrix", "client"] and len(segments) >= 5 and segments[-3] == "profile" \
        and segments[-1] == "displayname"


def is_free_profile_field(segments: list[str]) -> bool:
    """A custom profile field (`PUT /profile/{user}/{field}`, MSC4133, any namespaced name): free text
    room peers read, unchecked, so a channel around every name rule. Only the display name (checked
    here) and the picture (refused by Synapse's config) are set."""
    return segments[:2] == ["_matrix", "client"] and len(segments) >= 5 and segments[-3] == "profile" \
        and segments[-1] not in ("displayname", "avatar_url")


_MEDIA_READS = ("download", "thumbnail")


def media_asked_for(segments: list[str]) -> tuple[str, str] | None:
    """The (server name, media id) a download or thumbnail asks for, on any path Synapse serves them
    (/_matrix/client/v1/media/..., the legacy /_matrix/media/{version}/..., unstable prefixes)."""
    if segments[:1] != ["_matrix"] or "media" not in segments:
        return None
    after = segments.index("media") + 1
    for i in range(after, min(after + 2, len(segments))):
        if segments[i] in _MEDIA_READS and len(segments) >= i + 3:
            return segments[i + 1], segments[i + 2]
    return None


def display_name(body: object) -> str | None:
    """The name a display-name change sets (None for a body Synapse refuses itself)."""
    name = body.get("displayname") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


# -- Device keys -------------------------------------------------------------------------------


def _request_field(route: Route) -> str:
    return "device_keys" if route is Route.KEYS_QUERY else "one_time_keys"


def users_asked_for(route: Route, body: object) -> set[str]:
    """The accounts whose keys a /keys/query or /keys/claim asks for (none if the body is not the
    shape Synapse accepts: Synapse then refuses it itself)."""
    wanted = body.get(_request_field(route)) if isinstance(body, dict) else None
    return {user for user in wanted if isinstance(user, str)} if isinstance(wanted, dict) else set()


def restrict_keys_request(route: Route, body: dict, allowed: set[str]) -> dict:
    """The request without the accounts the requester may not see. Stripped before Synapse sees
    it, not only from the answer: a claim spends one-time keys."""
    field = _request_field(route)
    wanted = body.get(field)
    if not isinstance(wanted, dict):
        return body
    return {**body, field: {user: value for user, value in wanted.items() if user in allowed}}


def restrict_keys_response(body: object, allowed: set[str], requester: str = "") -> object:
    """Defence in depth: Synapse's answer keeps only keys of accounts the requester may see. Other
    people's device names are left out ("Bella's Samsung (Chisinau)" says where and what she
    carries); a device is still known by its id and keys, which is all encryption needs."""
    if not isinstance(body, dict):
        return body
    restricted = dict(body)
    for field in KEY_FIELDS:
        keys = body.get(field)
        if isinstance(keys, dict):
            restricted[field] = {user: value for user, value in keys.items() if user in allowed}
    devices_by_user = restricted.get("device_keys")
    if isinstance(devices_by_user, dict):
        restricted["device_keys"] = {user: devices if user == requester else _without_names(devices)
                                     for user, devices in devices_by_user.items()}
    return restricted


def _without_names(devices: object) -> object:
    if not isinstance(devices, dict):
        return devices
    unnamed = {}
    for device_id, device in devices.items():
        unsigned = device.get("unsigned") if isinstance(device, dict) else None
        if isinstance(unsigned, dict) and "device_display_name" in unsigned:
            device = {**device, "unsigned": {k: v for k, v in unsigned.items() if k != "device_display_name"}}
        unnamed[device_id] = device
    return unnamed


def users_messaged(body: object) -> set[str]:
    """The accounts a /sendToDevice request sends to."""
    messages = body.get("messages") if isinstance(body, dict) else None
    return {user for user in messages if isinstance(user, str)} if isinstance(messages, dict) else set()


def restrict_to_device(body: dict, allowed: set[str]) -> dict:
    """To-device messages only to accounts the sender shares a room with: a stranger can neither
    learn whether a member's devices exist nor send them fake verification requests."""
    messages = body.get("messages")
    if not isinstance(messages, dict):
        return body
    return {**body, "messages": {user: value for user, value in messages.items() if user in allowed}}


def localpart(user: str) -> str:
    """How the hub's limits name an account: "@Anna:hub" and "anna" are both "anna"."""
    return user.strip().lower().removeprefix("@").split(":")[0]


def _named_user(login: dict) -> str | None:
    """The account a password login or password stage names, or None if it names none."""
    identifier = login.get("identifier")
    user = identifier.get("user") if isinstance(identifier, dict) else login.get("user")
    return localpart(user) if isinstance(user, str) and user.strip() else None


def password_stage_account(body: object) -> str | None:
    """The account a user-interactive auth password stage names ("" if it names none), or None when
    the request has no password stage."""
    auth = body.get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict) or auth.get("type") != "m.login.password":
        return None
    return _named_user(auth) or ""


def login_account(body: object) -> str | None:
    """The account a password login is for, as a lower-case localpart (the form the hub's limits
    use), or None for other kinds of login."""
    if not isinstance(body, dict) or body.get("type") != "m.login.password":
        return None
    return _named_user(body)


def stage_completed(stage: str, status: int, answer: object) -> bool:
    """Synapse's answer says this user-interactive auth passed `stage`."""
    if status == 200:
        return True
    completed = answer.get("completed") if isinstance(answer, dict) else None
    return status == 401 and isinstance(completed, list) and stage in completed


# -- Registration --------------------------------------------------------------------------------


def registration_token(body: object) -> str | None:
    """The invitation code in a registration's registration-token stage, if it has one."""
    auth = body.get("auth") if isinstance(body, dict) else None
    if isinstance(auth, dict) and auth.get("type") == REGISTRATION_TOKEN_STAGE and isinstance(auth.get("token"), str):
        return auth["token"]
    return None


def with_registration_token(body: dict, token: str) -> dict:
    return {**body, "auth": {**body["auth"], "token": token}}


def uia_session(body: object) -> str | None:
    auth = body.get("auth") if isinstance(body, dict) else None
    session = auth.get("session") if isinstance(auth, dict) else None
    return session if isinstance(session, str) else None
