"""The hub's provisioning link to Synapse: admin API, appservice and registration.

All HTTP to Synapse goes through here. Tokens travel in headers only, never in URLs, so
nothing that logs URLs ever sees them. Synapse listens only on a UNIX socket in the 0700
`DATA_DIR/synapse/` directory; the hub reaches it through `synapse_session`, Matrix clients
through the gateway (`crossline.gateway`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp

from crossline.config import Config
from crossline.errors import HomeserverError, InvalidInput

ADMIN = "/_synapse/admin"
CLIENT = "/_matrix/client/v3"
HUB_ADDRESS = "127.0.0.1"
# Synapse refuses names in the appservice's exclusive namespaces (synapse/files.py).
RESERVED_NAME = ("That user name is reserved for the hub's own accounts: names made of p and then a mark (p-, p_, "
                 "p., p=, p/, p+) are kept for pseudonyms. Choose another.")


def synapse_session(config: Config, connections: int = 100, **options: Any) -> aiohttp.ClientSession:
    """An HTTP session whose every request goes to Synapse's own socket, whatever host the URL
    names (`config.homeserver_url`). `connections`: at most this many at once (0: no limit);
    options are ClientSession's (timeout, auto_decompress ...)."""
    connector = aiohttp.UnixConnector(path=str(config.paths.synapse_socket), limit=connections)
    # Synapse's socket listener takes the client's address from X-Forwarded-For (the gateway
    # sets a pseudonym); the hub's own requests say loopback, as they did over TCP.
    headers = {"X-Forwarded-For": HUB_ADDRESS, "X-Forwarded-Proto": "http"}
    return aiohttp.ClientSession(connector=connector, headers=headers, **options)


class Homeserver:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, admin_token: str = "", as_token: str = ""):
        self._base = base_url.rstrip("/")
        self.session = session
        self.admin_token = admin_token
        self._as_token = as_token

    async def _request(
        self, method: str, path: str, token: str | None = None, body: Any = None, params: dict | None = None
    ) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.request(
                method, self._base + path, json=body, headers=headers, params=params,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = {}
                return response.status, data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as error:
            raise HomeserverError(f"The homeserver could not be reached ({type(error).__name__}). Is Synapse running?") from error

    async def _ok(self, method: str, path: str, token: str | None = None, body: Any = None, params: dict | None = None) -> dict:
        status, data = await self._request(method, path, token, body, params)
        if status >= 400:
            raise HomeserverError(f"The homeserver refused: {data.get('error') or status}")
        return data

    async def healthy(self) -> bool:
        try:
            async with self.session.get(self._base + "/health", timeout=aiohttp.ClientTimeout(total=3)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    # -- The hub's own admin account -------------------------------------------------

    async def register_with_shared_secret(self, shared_secret: str, localpart: str, password: str, admin: bool) -> str:
        nonce = (await self._ok("GET", f"{ADMIN}/v1/register"))["nonce"]
        mac_hex = hmac.new(
            shared_secret.encode(),
            b"\x00".join(p.encode() for p in (nonce, localpart, password, "admin" if admin else "notadmin")),
            hashlib.sha1,
        ).hexdigest()
        data = await self._ok(
            "POST",
            f"{ADMIN}/v1/register",
            body={"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac_hex},
        )
        return data["access_token"]

    async def login_with_password(self, user_id: str, password: str) -> str:
        data = await self._ok(
            "POST",
            f"{CLIENT}/login",
            body={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password},
        )
        return data["access_token"]

    async def username_available(self, localpart: str) -> bool:
        status, _ = await self._request("GET", f"{CLIENT}/register/available", params={"username": localpart})
        return status == 200

    async def whoami(self, token: str) -> str | None:
        status, data = await self._request("GET", f"{CLIENT}/account/whoami", token)
        return data.get("user_id") if status == 200 else None

    # -- Registration tokens and accounts --------------------------------------------

    async def create_registration_token(self, token: str, expiry_ms: int) -> None:
        await self._ok(
            "POST",
            f"{ADMIN}/v1/registration_tokens/new",
            self.admin_token,
            {"token": token, "uses_allowed": 1, "expiry_time": expiry_ms},
        )

    async def delete_registration_token(self, token: str) -> None:
        await self._request("DELETE", f"{ADMIN}/v1/registration_tokens/{quote(token, safe='')}", self.admin_token)

    async def registration_token_usable(self, token: str, now_ms: int) -> bool:
        """Whether Synapse would accept this registration token now (exists, not used up, not
        expired). Through the admin API: the client API's validity check is rate-limited per
        address, and every request of the hub comes from one."""
        status, data = await self._request("GET", f"{ADMIN}/v1/registration_tokens/{quote(token, safe='')}",
                                           self.admin_token)
        if status != 200:
            return False
        uses, expiry = data.get("uses_allowed"), data.get("expiry_time")
        used = (data.get("pending") or 0) + (data.get("completed") or 0)
        return (uses is None or used < uses) and (expiry is None or expiry > now_ms)

    async def memberships(self, user_id: str) -> dict[str, str]:
        """Room id -> the account's current membership there (join, invite, leave, ban ...)."""
        data = await self._ok("GET", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/memberships", self.admin_token)
        memberships = data.get("memberships")
        return {str(room): str(state) for room, state in memberships.items()} if isinstance(memberships, dict) else {}

    async def room_memberships(self, room_id: str) -> dict[str, str]:
        """User id -> membership, for every account in the room's current state."""
        return {user: str(event.get("content", {}).get("membership"))
                for user, event in (await self._member_events(room_id)).items()}

    async def member_event(self, room_id: str, user_id: str) -> dict | None:
        """The account's current m.room.member event in the room (its `sender` invited her)."""
        return (await self._member_events(room_id)).get(user_id)

    async def _member_events(self, room_id: str) -> dict[str, dict]:
        data = await self._ok("GET", f"{ADMIN}/v1/rooms/{quote(room_id, safe='')}/state", self.admin_token,
                              params={"type": "m.room.member"})
        return {event["state_key"]: event for event in data.get("state", [])
                if isinstance(event, dict) and isinstance(event.get("state_key"), str)}

    async def user_info(self, user_id: str) -> dict | None:
        """The admin API's account details (`creation_ts` in seconds, `admin`, ...), or None."""
        status, data = await self._request("GET", f"{ADMIN}/v2/users/{quote(user_id, safe='')}", self.admin_token)
        return data if status == 200 else None

    async def display_name(self, user_id: str) -> str | None:
        """Her display name, or None if she has none or Synapse cannot say."""
        try:
            info = await self.user_info(user_id)
        except HomeserverError:
            return None
        name = (info or {}).get("displayname")
        return name if isinstance(name, str) else None

    async def media_uploader(self, server_name: str, media_id: str) -> str | None:
        """Who uploaded a file of this server (None if Synapse knows no such file, or it came from
        another server)."""
        status, data = await self._request(
            "GET", f"{ADMIN}/v1/media/{quote(server_name, safe='')}/{quote(media_id, safe='')}", self.admin_token)
        if status in (400, 404):  # no such file: the download itself is answered so too
            return None
        if status != 200:
            raise HomeserverError(f"Synapse's media information answered {status}")
        info = data.get("media_info") if isinstance(data, dict) else None  # Synapse's answer: {"media_info": {...}}
        if not isinstance(info, dict):  # an answer not understood never lets a file through
            raise HomeserverError("Synapse's media information was not in the expected form")
        user_id = info.get("user_id")
        return user_id if isinstance(user_id, str) else None

    async def register_with_token(self, localpart: str, password: str, registration_token: str) -> str:
        """Register through the client API exactly as a Matrix client would, so the same
        token rules apply. Returns the new user id."""
        body: dict[str, Any] = {"username": localpart, "password": password, "inhibit_login": True}
        status, data = await self._request("POST", f"{CLIENT}/register", body=body)
        if status == 400 and data.get("errcode") == "M_USER_IN_USE":
            raise InvalidInput("That user name is taken. Choose another.")
        if status == 400 and data.get("errcode") == "M_EXCLUSIVE":
            raise InvalidInput(RESERVED_NAME)
        if status != 401 or "session" not in data:
            raise HomeserverError(f"Registration could not start: {data.get('error') or status}")
        body["auth"] = {"type": "m.login.registration_token", "token": registration_token, "session": data["session"]}
        status, data = await self._request("POST", f"{CLIENT}/register", body=body)
        if status == 401 and "m.login.dummy" in str(data.get("flows")):
            body["auth"] = {"type": "m.login.dummy", "session": body["auth"]["session"]}
            status, data = await self._request("POST", f"{CLIENT}/register", body=body)
        if status != 200:
            if data.get("errcode") == "M_USER_IN_USE":
                raise InvalidInput("That user name is taken. Choose another.")
            if data.get("errcode") == "M_EXCLUSIVE":
                raise InvalidInput(RESERVED_NAME)
            if data.get("errcode") == "M_INVALID_USERNAME":
                raise InvalidInput(f"That user name is not allowed: {data.get('error')}")
            raise HomeserverError(f"Registration was refused: {data.get('error') or status}")
        return data["user_id"]

    # -- Acting in rooms ----------------------------------------------------------------

    @asynccontextmanager
    async def acting_as(self, user_id: str, valid_for_ms: int, now_ms: int) -> AsyncIterator[str]:
        """A short-lived token for `user_id` with no device of its own, logged out after use.

        Used so that rooms the bot must not be in are created by the facilitator herself."""
        data = await self._ok(
            "POST", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/login", self.admin_token, {"valid_until_ms": now_ms + valid_for_ms}
        )
        token = data["access_token"]
        try:
            yield token
        finally:
            await self._request("POST", f"{CLIENT}/logout", token)

    async def create_room(self, token: str, body: dict) -> str:
        return (await self._ok("POST", f"{CLIENT}/createRoom", token, body))["room_id"]

    async def register_appservice_user(self, localpart: str) -> None:
        """Create an account in the appservice's namespace (the bot); already there is fine."""
        status, data = await self._request(
            "POST", f"{CLIENT}/register", self._as_token,
            {"type": "m.login.application_service", "username": localpart, "inhibit_login": True},
        )
        if status != 200 and data.get("errcode") != "M_USER_IN_USE":
            raise HomeserverError(f"The bot's account could not be created: {data.get('error') or status}")

    async def lift_rate_limits(self, user_id: str) -> None:
        """For the hub's own bot: it answers every participant, so per-user limits would stall it."""
        await self._ok("POST", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/override_ratelimit", self.admin_token,
                       {"messages_per_second": 0, "burst_count": 0})

    async def join_as(self, user_id: str, room_id: str) -> None:
        """An account of the appservice's namespace (the bot) accepts an invitation."""
        await self._ok("POST", f"{CLIENT}/join/{quote(room_id, safe='')}", self._as_token, {}, params={"user_id": user_id})

    # -- Moderation ------------------------------------------------------------------------

    async def reports(self, kind: str, offset: int, limit: int = 100) -> list[dict]:
        """Standard Matrix reports as the admin API lists them, oldest first from `offset`.
        kind: "event_reports" or "user_reports"."""
        data = await self._ok("GET", f"{ADMIN}/v1/{kind}", self.admin_token,
                              params={"from": str(offset), "limit": str(limit), "dir": "f"})
        return list(data.get(kind, []))

    async def joined_rooms(self, user_id: str) -> list[str]:
        data = await self._ok("GET", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/joined_rooms", self.admin_token)
        return list(data.get("joined_rooms", []))

    async def room_creator(self, room_id: str) -> str | None:
        data = await self._ok("GET", f"{ADMIN}/v1/rooms/{quote(room_id, safe='')}", self.admin_token)
        creator = data.get("creator")
        return creator if isinstance(creator, str) else None

    async def room_power_levels(self, room_id: str) -> dict[str, int]:
        """Account -> power level, as the room's current power levels name them."""
        data = await self._ok("GET", f"{ADMIN}/v1/rooms/{quote(room_id, safe='')}/state", self.admin_token,
                              params={"type": "m.room.power_levels"})
        events = [e for e in data.get("state", []) if isinstance(e, dict) and e.get("state_key") == ""]
        users = events[0].get("content", {}).get("users", {}) if events else {}
        return {user: level for user, level in users.items() if isinstance(level, int)}

    async def make_room_admin(self, room_id: str) -> None:
        """The hub's admin account gets the power of the room's most powerful local member (Synapse's
        admin API, which invites it) and joins, so that the hub can act in a room it did not create."""
        await self._ok("POST", f"{ADMIN}/v1/rooms/{quote(room_id, safe='')}/make_room_admin", self.admin_token, {})
        await self._ok("POST", f"{CLIENT}/join/{quote(room_id, safe='')}", self.admin_token, {})

    async def close_room(self, room_id: str) -> None:
        """Everyone is removed and nobody can join again; the history is kept (no purge)."""
        await self._ok("DELETE", f"{ADMIN}/v1/rooms/{quote(room_id, safe='')}", self.admin_token,
                       {"block": True, "purge": False})

    # `reason` stays with the hub (sealed in the case): Synapse would store it in clear and show it
    # to everyone in the room, so our Synapse module refuses reasons.
    async def redact(self, token: str, room_id: str, event_id: str, txn_id: str) -> None:
        """Without a reason: Synapse would keep it in clear (moderators' reasons stay in the hub)."""
        await self._ok("PUT", f"{CLIENT}/rooms/{quote(room_id, safe='')}/redact/{quote(event_id, safe='')}/{txn_id}",
                       token, {})

    async def remove_from_room(self, token: str, room_id: str, user_id: str, ban: bool) -> None:
        await self._ok("POST", f"{CLIENT}/rooms/{quote(room_id, safe='')}/{'ban' if ban else 'kick'}", token,
                       {"user_id": user_id})

    async def unban(self, token: str, room_id: str, user_id: str) -> None:
        await self._ok("POST", f"{CLIENT}/rooms/{quote(room_id, safe='')}/unban", token, {"user_id": user_id})

    async def invite(self, token: str, room_id: str, user_id: str) -> None:
        await self._ok("POST", f"{CLIENT}/rooms/{quote(room_id, safe='')}/invite", token, {"user_id": user_id})

    async def ban_of(self, room_id: str, user_id: str) -> tuple[str, str | None] | None:
        """(who banned her, her membership before the ban) while she is banned from the room, else
        None. The membership before is read from the event the ban replaced (None if unknown)."""
        event = await self.member_event(room_id, user_id)
        if not event or event.get("content", {}).get("membership") != "ban":
            return None
        replaced, before = event.get("unsigned", {}).get("replaces_state"), None
        if isinstance(replaced, str):
            status, data = await self._request("GET", f"{ADMIN}/v1/fetch_event/{quote(replaced, safe='')}",
                                               self.admin_token)
            membership = data.get("event", {}).get("content", {}).get("membership") if status == 200 else None
            before = membership if isinstance(membership, str) else None
        return str(event.get("sender")), before

    async def send_state(self, token: str, room_id: str, event_type: str, state_key: str, content: dict) -> None:
        await self._ok("PUT", f"{CLIENT}/rooms/{quote(room_id, safe='')}/state/{event_type}/{quote(state_key, safe='')}",
                       token, content)

    async def server_notice(self, user_id: str, text: str) -> None:
        """To one account, in its server-notices room. That room is not encrypted (Synapse's
        design): only what the hub already knows goes there, never report content."""
        await self._ok("POST", f"{ADMIN}/v1/send_server_notice", self.admin_token,
                       {"user_id": user_id, "content": {"msgtype": "m.text", "body": text}})

    async def suspend(self, user_id: str) -> None:
        await self._ok("PUT", f"{ADMIN}/v1/suspend/{quote(user_id, safe='')}", self.admin_token, {"suspend": True})

    async def unsuspend(self, user_id: str) -> None:
        await self._ok("PUT", f"{ADMIN}/v1/suspend/{quote(user_id, safe='')}", self.admin_token, {"suspend": False})

    async def shadow_ban(self, user_id: str) -> None:
        await self._ok("POST", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/shadow_ban", self.admin_token, {})

    async def lift_shadow_ban(self, user_id: str) -> None:
        await self._ok("DELETE", f"{ADMIN}/v1/users/{quote(user_id, safe='')}/shadow_ban", self.admin_token)

    async def deactivate(self, user_id: str) -> None:
        await self._ok("POST", f"{ADMIN}/v1/deactivate/{quote(user_id, safe='')}", self.admin_token, {"erase": False})

    # -- Pseudonymous accounts ------------------------------------------------------------------
    # Made and handled so that Synapse keeps no login, device or address of the hub on them: the
    # appservice registers them (no login) and acts as them (Synapse records no address for
    # appservice requests unless `track_appservice_user_ips`); the password is set by the admin API.

    async def set_password(self, user_id: str, password: str) -> None:
        await self._ok("PUT", f"{ADMIN}/v2/users/{quote(user_id, safe='')}", self.admin_token,
                       {"password": password, "logout_devices": False})

    async def set_displayname(self, user_id: str, name: str) -> None:
        """As the account itself, through the appservice (the account is in its namespace)."""
        await self._ok("PUT", f"{CLIENT}/profile/{quote(user_id, safe='')}/displayname", self._as_token,
                       {"displayname": name}, params={"user_id": user_id})

    async def invite_as(self, inviter: str, room_id: str, user_id: str) -> None:
        """`inviter` (the hub's bot) invites, through the appservice: no token of hers, no address kept."""
        await self._ok("POST", f"{CLIENT}/rooms/{quote(room_id, safe='')}/invite", self._as_token,
                       {"user_id": user_id}, params={"user_id": inviter})

    async def password_matches(self, user_id: str, password: str) -> bool:
        """Synapse checks the password by a login whose device the admin API then deletes (with its
        token): the token is never used, so no address or last-seen time is recorded for her."""
        status, data = await self._request("POST", f"{CLIENT}/login", body={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password})
        if status != 200:
            return False
        await self._ok("DELETE", f"{ADMIN}/v2/users/{quote(user_id, safe='')}/devices/{quote(data['device_id'], safe='')}",
                       self.admin_token)
        return True
