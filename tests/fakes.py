"""Fakes for unit tests only: a clock to move, and a homeserver that records what it is asked."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from crossline.services.hub import Hub
from crossline.setup import init_data_dir
from crossline.storage import lines, members
from crossline.storage.db import create_database_engine, migrate
from crossline_policies.rooms import load_room_templates

HOUR_MS = 3600 * 1000


class FakeClock:
    def __init__(self, now_ms: int):
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


class FakeHomeserver:
    def __init__(self):
        self.tokens: dict[str, int] = {}
        self.accounts: dict[str, dict] = {}
        self.admin_token = "admin-token"
        self.calls: list[tuple] = []  # what moderation asked of the homeserver, in order
        self.matrix_reports: dict[str, list[dict]] = {"event_reports": [], "user_reports": []}

    async def register_with_shared_secret(self, shared_secret, localpart, password, admin):
        self.accounts[f"@{localpart}:crossline.local"] = {"name": f"@{localpart}:crossline.local"}
        self.calls.append(("register", localpart))
        return f"token-{localpart}"

    async def register_appservice_user(self, localpart):
        self.accounts[f"@{localpart}:crossline.local"] = {"name": f"@{localpart}:crossline.local"}
        self.calls.append(("register_appservice_user", localpart))

    async def set_password(self, user_id, password):
        self.accounts[user_id]["password"] = password
        self.calls.append(("set_password", user_id))

    async def set_displayname(self, user_id, name):
        self.accounts[user_id]["displayname"] = name
        self.calls.append(("set_displayname", user_id, name))

    async def invite_as(self, inviter, room_id, user_id):
        self.calls.append(("invite", inviter, room_id, user_id))

    async def password_matches(self, user_id, password):
        return self.accounts.get(user_id, {}).get("password") == password

    async def reports(self, kind: str, offset: int, limit: int = 100) -> list[dict]:
        return self.matrix_reports[kind][offset:offset + limit]

    @asynccontextmanager
    async def acting_as(self, user_id: str, valid_for_ms: int, now_ms: int):
        yield f"token-of-{user_id}"

    async def create_room(self, token: str, body: dict) -> str:
        self.calls.append(("create_room", body.get("name")))
        return "!policy:crossline.local"

    async def redact(self, token, room_id, event_id, txn_id):
        self.calls.append(("redact", room_id, event_id))

    async def remove_from_room(self, token, room_id, user_id, ban):
        self.calls.append(("ban" if ban else "kick", room_id, user_id))

    async def send_state(self, token, room_id, event_type, state_key, content):
        self.calls.append(("state", room_id, event_type, content["entity"], content["recommendation"]))

    async def server_notice(self, user_id, text):
        self.calls.append(("notice", user_id, text))

    async def suspend(self, user_id):
        self.calls.append(("suspend", user_id))

    async def shadow_ban(self, user_id):
        self.calls.append(("shadow_ban", user_id))

    async def deactivate(self, user_id):
        self.calls.append(("deactivate", user_id))

    async def create_registration_token(self, token: str, expiry_ms: int) -> None:
        self.tokens[token] = expiry_ms

    async def delete_registration_token(self, token: str) -> None:
        self.tokens.pop(token, None)

    async def user_info(self, user_id: str) -> dict | None:
        return self.accounts.get(user_id)

    async def member_event(self, room_id: str, user_id: str) -> dict | None:
        return getattr(self, "member_events", {}).get((room_id, user_id))


def make_unit_hub(tmp_path: Path) -> Hub:
    """A hub on a real SQLite database with the Nistru line, an admin and a facilitator."""
    config = init_data_dir(tmp_path / "data", hub_port=18111, synapse_port=18112)[0]
    engine = create_database_engine(config.database_url)
    migrate(engine)
    counter = iter(range(1000))
    hub = Hub(config, engine, FakeHomeserver(), FakeClock(1_000 * HOUR_MS), lambda: f"code{next(counter)}",
              load_room_templates())
    with engine.begin() as conn:
        lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
        admin_id = members.add_member(conn, "@admin:crossline.local", None, None, frozenset({"admin"}), None, 0)
        fac_id = members.add_member(conn, "@fac:crossline.local", None, None, frozenset({"facilitator"}), None, 0)
        hub.admin = members.get_member(conn, admin_id)
        hub.facilitator = members.get_member(conn, fac_id)
    return hub


