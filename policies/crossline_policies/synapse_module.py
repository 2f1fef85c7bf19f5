"""The Synapse module: loads into Synapse and applies `enforcement` to every request.

Configured by `crossline init` in homeserver.yaml:
    modules:
      - module: crossline_policies.synapse_module.CrosslinePolicy
        config: {known_members_path: ..., registration_claims_dir: ..., exempt_users: [...]}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapse.api.errors import Codes, SynapseError
from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.types import UserID

from crossline_policies import enforcement

logger = logging.getLogger(__name__)

REGISTRATION_TOKEN_STAGE = "m.login.registration_token"


@dataclass(frozen=True)
class ModuleConfig:
    known_members_path: Path
    registration_claims_dir: Path
    exempt_users: frozenset[str]
    live_widget_sender: str = ""
    live_page_prefix: str = ""


class KnownMembers:
    """The hub's list of member accounts, re-read whenever the hub rewrites the file."""

    def __init__(self, path: Path):
        self._path = path
        self._mtime_ns: int | None = None
        self._user_ids: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        try:
            mtime_ns = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            # Fail closed: without the hub's list nobody can be invited.
            logger.warning("Crossline known-members file %s is missing", self._path)
            return frozenset()
        if mtime_ns != self._mtime_ns:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self._user_ids = frozenset(data["user_ids"])
            self._mtime_ns = mtime_ns
        return self._user_ids


def _refuse(message: str) -> SynapseError:
    return SynapseError(403, message, Codes.FORBIDDEN)


class CrosslinePolicy:
    def __init__(self, config: ModuleConfig, api: ModuleApi):
        self._config = config
        self._api = api
        self._known = KnownMembers(config.known_members_path)
        api.register_spam_checker_callbacks(
            user_may_invite=self.user_may_invite,
            user_may_publish_room=self.user_may_publish_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
        )
        # check_event_allowed sees every event the server is about to store: messages, state,
        # memberships (which the spam checker's check_event_for_spam never sees), redactions, and
        # the first events of a new or upgraded room.
        api.register_third_party_rules_callbacks(
            check_event_allowed=self.check_event_allowed, on_create_room=self.on_create_room
        )
        api.register_password_auth_provider_callbacks(
            get_username_for_registration=self.get_username_for_registration
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> ModuleConfig:
        return ModuleConfig(
            known_members_path=Path(config["known_members_path"]),
            registration_claims_dir=Path(config["registration_claims_dir"]),
            exempt_users=frozenset(config.get("exempt_users", [])),
            live_widget_sender=str(config.get("live_widget_sender", "")),
            live_page_prefix=str(config.get("live_page_prefix", "")),
        )

    async def check_event_allowed(self, event: Any, state_events: dict) -> tuple[bool, None]:
        # The server-notices account posts Synapse's notices, in clear by Synapse's design.
        if event.sender in self._config.exempt_users:
            return True, None
        refusal = enforcement.check_event(await self._room_event(event, state_events))
        if refusal:
            raise _refuse(refusal)
        return True, None

    async def _room_event(self, event: Any, state_events: dict) -> enforcement.RoomEvent:
        """The facts the pure rules need, looked up only for the events that need them."""
        is_state = event.is_state()
        redacts_state = None
        if event.type == "m.room.redaction" and not is_state:
            redacts_state = next((e.type for e in state_events.values() if e.event_id == event.redacts), None)
        profile = enforcement.Profile()
        if event.type == "m.room.member" and is_state and self._api.is_mine(event.state_key):
            info = await self._api.get_profile_for_user(UserID.from_string(event.state_key).localpart)
            profile = enforcement.Profile(info.display_name, info.avatar_url)
        hub_admin = event.type in enforcement.POLICY_RULES and await self._api.is_user_admin(event.sender)
        return enforcement.RoomEvent(
            type=event.type,
            content=event.content,
            state_key=event.state_key if is_state else None,
            redacts_state=redacts_state,
            profile=profile,
            sender_is_hub_admin=hub_admin,
            live_page_prefix=self._config.live_page_prefix
            if event.sender == self._config.live_widget_sender and self._config.live_widget_sender else None,
        )

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        if inviter in self._config.exempt_users:
            return NOT_SPAM
        refusal = enforcement.check_invite(inviter, invitee, self._known.current())
        if refusal:
            raise _refuse(refusal)
        return NOT_SPAM

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        raise _refuse(enforcement.check_publish_room())

    async def user_may_create_room_alias(self, user_id: str, room_alias: Any) -> Any:
        raise _refuse(enforcement.ALIASES)

    async def on_create_room(self, requester: Any, request: dict, is_requester_admin: bool) -> None:
        refusal = enforcement.check_create_room(request)
        if refusal:
            raise _refuse(refusal)
        # Belt and braces beside encryption_enabled_by_default_for_room_type: the room is
        # invite-only and encrypted from its first events whatever the client asked for.
        request["preset"] = "private_chat"
        initial_state = request.setdefault("initial_state", [])
        types = {state.get("type") for state in initial_state}
        if "m.room.encryption" not in types:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": enforcement.MEGOLM}}
            )
        if "m.room.guest_access" not in types:
            initial_state.append(
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}
            )

    async def get_username_for_registration(self, uia_results: dict, params: dict) -> str | None:
        """Record which account a registration token was used for, so the hub can bind the
        invitation to it. Only the token's hash and the chosen name are written."""
        token = uia_results.get(REGISTRATION_TOKEN_STAGE)
        if not isinstance(token, str):
            return None
        username = params.get("username")
        if not isinstance(username, str) or not username:
            # Synapse would pick a number; pick an opaque name ourselves so it can be recorded.
            username = f"member-{secrets.token_hex(6)}"
        claim = self._config.registration_claims_dir / hashlib.sha256(token.encode()).hexdigest()
        tmp = claim.with_name(f".{claim.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"localpart": username.lower()}, handle)
        os.replace(tmp, claim)
        return username
