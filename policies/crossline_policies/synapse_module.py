"""The Synapse module: loads into Synapse and applies `enforcement` to every request.

Configured by `crossline init` in homeserver.yaml:
    modules:
      - module: crossline_policies.synapse_module.CrosslinePolicy
        config: {known_members_path: ..., registration_claims_dir: ..., exempt_users: [...],
                 protected_names_path: ...}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapse.api.errors import Codes, SynapseError
from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.types import UserID

from crossline_policies import contact, enforcement, names
from crossline_policies.hub_file import HubFile
from crossline_policies.protected_names_file import ProtectedNamesFile, with_staff_names

logger = logging.getLogger(__name__)

REGISTRATION_TOKEN_STAGE = "m.login.registration_token"


@dataclass(frozen=True)
class ModuleConfig:
    known_members_path: Path
    registration_claims_dir: Path
    exempt_users: frozenset[str]
    protected_names_path: Path
    live_widget_sender: str = ""
    live_page_prefix: str = ""
    # How long after she declines someone's invitation that person cannot invite her again.
    decline_pause_ms: int = 7 * 24 * 3600 * 1000


def known_members(path: Path) -> HubFile[contact.Directory]:
    """The hub's directory of accounts (`contact.Directory`). Fail closed: while the file cannot be read
    nobody can be invited."""
    return HubFile(path, contact.parse_directory, lambda _last: contact.Directory(), "known-members")


# She left the room right after joining it from the invitation: a decline as much as a rejection.
QUICK_LEAVE_MS = 10 * 60 * 1000

# Synapse's tables (room_memberships, events, local_current_membership), read-only. A decline is
# her own leave that follows the inviter's invitation with nothing between but her joining (and
# then leaving within QUICK_LEAVE_MS of the invitation).
_SHARED_ROOM_SQL = """
SELECT 1 FROM local_current_membership a JOIN local_current_membership b ON a.room_id = b.room_id
WHERE a.user_id = ? AND b.user_id = ? AND a.membership = 'join' AND b.membership = 'join' LIMIT 1
"""
_DECLINE_SQL = """
SELECT 1 FROM room_memberships inv
JOIN events ie ON ie.event_id = inv.event_id
JOIN room_memberships lv ON lv.room_id = inv.room_id AND lv.user_id = inv.user_id
    AND lv.sender = lv.user_id AND lv.membership = 'leave'
JOIN events le ON le.event_id = lv.event_id
WHERE inv.user_id = ? AND inv.sender = ? AND inv.membership = 'invite'
    AND le.stream_ordering > ie.stream_ordering AND le.origin_server_ts >= ?
    AND NOT EXISTS (
        SELECT 1 FROM room_memberships mid JOIN events me ON me.event_id = mid.event_id
        WHERE mid.room_id = inv.room_id AND mid.user_id = inv.user_id
            AND me.stream_ordering > ie.stream_ordering AND me.stream_ordering < le.stream_ordering
            AND (mid.membership <> 'join' OR le.origin_server_ts > ie.origin_server_ts + ?))
LIMIT 1
"""


def _invite_history(txn: Any, inviter: str, invitee: str, since_ms: int) -> tuple[bool, bool]:
    txn.execute(_SHARED_ROOM_SQL, (inviter, invitee))
    share = txn.fetchone() is not None
    txn.execute(_DECLINE_SQL, (invitee, inviter, since_ms, QUICK_LEAVE_MS))
    return share, txn.fetchone() is not None


def _refuse(message: str) -> SynapseError:
    return SynapseError(403, message, Codes.FORBIDDEN)


class CrosslinePolicy:
    def __init__(self, config: ModuleConfig, api: ModuleApi):
        self._config = config
        self._api = api
        self._known = known_members(config.known_members_path)
        self._protected = ProtectedNamesFile(config.protected_names_path)
        api.register_spam_checker_callbacks(
            user_may_invite=self.user_may_invite,
            user_may_publish_room=self.user_may_publish_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
            check_media_file_for_spam=self.check_media_file_for_spam,
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
        if not config.get("protected_names_path"):
            # Fail closed: without the hub's names no display name, room name or topic would be checked.
            raise ValueError("The Crossline module needs protected_names_path (written by crossline init).")
        return ModuleConfig(
            known_members_path=Path(config["known_members_path"]),
            registration_claims_dir=Path(config["registration_claims_dir"]),
            exempt_users=frozenset(config.get("exempt_users", [])),
            live_widget_sender=str(config.get("live_widget_sender", "")),
            live_page_prefix=str(config.get("live_page_prefix", "")),
            protected_names_path=Path(config["protected_names_path"]),
            decline_pause_ms=int(config.get("decline_pause_seconds", 7 * 24 * 3600)) * 1000,
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
        names_matter = event.type in ("m.room.name", "m.room.topic") or (
            event.type == "m.room.member" and is_state and event.content.get("membership") == "join")
        return enforcement.RoomEvent(
            type=event.type,
            content=event.content,
            state_key=event.state_key if is_state else None,
            redacts_state=redacts_state,
            profile=profile,
            sender_is_hub_admin=hub_admin,
            live_page_prefix=self._config.live_page_prefix
            if event.sender == self._config.live_widget_sender and self._config.live_widget_sender else None,
            protected=await self._protected_names() if names_matter else None,
            sender=event.sender,
        )

    async def _protected_names(self) -> names.Protected:
        """The hub's protected names, with its staff's and bot's display names as they are now."""
        protected, staff = self._protected.current()
        return await with_staff_names(protected, staff, self._display_name)

    async def _display_name(self, user_id: str) -> str | None:
        if not self._api.is_mine(user_id):
            return None
        try:
            return (await self._api.get_profile_for_user(UserID.from_string(user_id).localpart)).display_name
        except SynapseError:  # not registered yet
            return None

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        if inviter in self._config.exempt_users:
            return NOT_SPAM
        directory = self._known.current()
        facts = contact.InviteFacts()
        if contact.needs_facts(inviter, invitee, directory):
            facts = await self._invite_facts(inviter, invitee)
        refusal = contact.check_invite(inviter, invitee, directory, facts)
        if refusal:
            raise _refuse(refusal)
        return NOT_SPAM

    async def _invite_facts(self, inviter: str, invitee: str) -> contact.InviteFacts:
        """Read before the invitation is stored, so a refused one never reaches her sync or her
        notifications. Declines are read from Synapse's own membership history, so they outlast a
        restart with nothing kept beside it."""
        ignored = await self._api.account_data_manager.get_global(invitee, "m.ignored_user_list") or {}
        ignored_users = ignored.get("ignored_users")
        since_ms = self._api.get_current_time_msec() - self._config.decline_pause_ms
        share, declined = await self._api.run_db_interaction(
            "crossline_invite_facts", _invite_history, inviter, invitee, since_ms)
        return contact.InviteFacts(
            share_a_room=share,
            ignored_by_invitee=isinstance(ignored_users, Mapping) and inviter in ignored_users,
            declined_recently=declined,
        )

    async def check_media_file_for_spam(self, file_wrapper: Any, file_info: Any) -> Any:
        head = bytearray()

        def keep(chunk: bytes) -> None:
            if len(head) < contact.SNIFF_BYTES:
                head.extend(chunk[:contact.SNIFF_BYTES - len(head)])

        await file_wrapper.write_chunks_to(keep)
        kind = contact.clear_media_kind(bytes(head))
        if kind:
            raise SynapseError(400, contact.CLEAR_MEDIA.format(kind=kind), Codes.FORBIDDEN)
        return NOT_SPAM

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        raise _refuse(enforcement.check_publish_room())

    async def user_may_create_room_alias(self, user_id: str, room_alias: Any) -> Any:
        raise _refuse(enforcement.ALIASES)

    async def on_create_room(self, requester: Any, request: dict, is_requester_admin: bool) -> None:
        creator = requester.user.to_string()
        # Synapse's notices account names its rooms "Crossline notices": its words are the hub's own.
        protected = None if creator in self._config.exempt_users else await self._protected_names()
        refusal = enforcement.check_create_room(request, creator, protected)
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
