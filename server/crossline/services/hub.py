"""The hub's dependencies in one place, built once by `create_app` and handed to services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from crossline.clock import Clock, TokenFactory
from crossline.config import Config
from crossline.matrix.homeserver import Homeserver
from crossline.storage import contact_directory, lines, members
from crossline.storage import pseudonyms as pseudonym_store
from crossline.storage import rooms as room_store
from crossline.synapse.files import protected_names_path, write_known_members, write_protected_names
from crossline_policies.names import Protected, ProtectedName, protected_names_document
from crossline_policies.protected_names_file import ProtectedNamesFile, with_staff_names
from crossline_policies.contact import DEFAULT_INVITES_FROM
from crossline_policies.rooms import RoomTemplate


@dataclass
class Hub:
    config: Config
    engine: Engine
    homeserver: Homeserver
    clock: Clock
    new_token: TokenFactory
    room_templates: dict[str, RoomTemplate]

    def publish_known_members(self) -> None:
        """Tell our Synapse module who may invite and be invited: every member account with her
        lines (staff without a line serve every line), whether she is staff, and whom she takes
        invitations from; and the hub's own accounts."""
        with self.engine.connect() as conn:
            everyone = [m for m in members.list_members(conn) if m.matrix_user_id]
            all_lines = sorted(line.id for line in lines.list_lines(conn))
            chosen = contact_directory.preferences(conn)
        directory = {
            m.matrix_user_id: {
                "lines": [m.line_id] if m.line_id is not None else all_lines if m.is_staff else [],
                "staff": m.is_staff,
                "invites_from": chosen.get(m.id, DEFAULT_INVITES_FROM),
            }
            for m in everyone
        }
        write_known_members(self.config.paths.known_members, directory,
                            [self.config.hub_admin_user_id, self.config.bot_user_id])

    def publish_protected_names(self) -> None:
        """Tell our Synapse module and the gateway which names nobody else may take: pseudonyms'
        (each for its own account), the hub's rooms' names and topic notes; and which accounts are
        staff (their display names, read where they are checked, are theirs alone: staff rename
        themselves in their clients) or the hub's own. Called wherever the known members change."""
        with self.engine.connect() as conn:
            staff = [m.matrix_user_id for m in members.list_members(conn) if m.is_staff and m.matrix_user_id]
            pseudonym_names = pseudonym_store.names_with_accounts(conn)
            room_names = [room.name for room in room_store.list_rooms(conn)]
        hub_rooms = "one of the hub's rooms"
        names = [
            *(ProtectedName(name, user_id, "a pseudonym") for user_id, name in pseudonym_names),
            *(ProtectedName(name, "", hub_rooms) for name in room_names),
            *(ProtectedName(t.topic_note, "", hub_rooms) for t in self.room_templates.values() if t.topic_note),
        ]
        accounts = [*staff, self.config.hub_admin_user_id, self.config.bot_user_id]
        write_protected_names(protected_names_path(self.config), protected_names_document(names, accounts, accounts))

    async def protected_names_now(self) -> Protected:
        """What `publish_protected_names` wrote, with the staff's and bot's display names as they are now."""
        protected, staff = ProtectedNamesFile(protected_names_path(self.config)).current()
        return await with_staff_names(protected, staff, self.homeserver.display_name)
