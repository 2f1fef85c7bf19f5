"""The hub's dependencies in one place, built once by `create_app` and handed to services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from crossline.clock import Clock, TokenFactory
from crossline.config import Config
from crossline.matrix.homeserver import Homeserver
from crossline.storage import members
from crossline.synapse.files import write_known_members
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
        """Tell our Synapse module who may invite and be invited (every member, the hub itself)."""
        with self.engine.connect() as conn:
            user_ids = members.all_user_ids(conn)
        write_known_members(
            self.config.paths.known_members, [*user_ids, self.config.hub_admin_user_id, self.config.bot_user_id]
        )
