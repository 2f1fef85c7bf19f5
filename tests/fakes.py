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
        # Rooms as Synapse knows them, for what the hub learns only from Synapse (rooms members made).
        self.room_members: dict[str, set[str]] = {}
        self.room_creators: dict[str, str] = {}
        self.room_levels: dict[str, dict[str, int]] = {}
        # (room, account) -> membership, and for a ban (who banned, membership before), as moderation changes them.
        self.membership: dict[tuple[str, str], str] = {}
        self.bans: dict[tuple[str, str], tuple[str, str | None]] = {}

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
        joined = "join" if user_id in self.room_members.get(room_id, ()) else None
        before = self.membership.get((room_id, user_id), joined)
        self.membership[(room_id, user_id)] = "ban" if ban else "leave"
        if ban:
            admin = token == self.admin_token
            self.bans[(room_id, user_id)] = ("@crossline-admin:crossline.local" if admin else
                                             token.removeprefix("token-of-"), before)

    async def unban(self, token, room_id, user_id):
        self.calls.append(("unban", room_id, user_id))
        self.membership[(room_id, user_id)] = "leave"
        self.bans.pop((room_id, user_id), None)

    async def invite(self, token, room_id, user_id):
        self.calls.append(("invite_back", room_id, user_id))
        self.membership[(room_id, user_id)] = "invite"

    async def memberships(self, user_id):
        return {room: state for (room, user), state in self.membership.items() if user == user_id}

    async def ban_of(self, room_id, user_id):
        return self.bans.get((room_id, user_id))

    async def joined_rooms(self, user_id):
        return [room_id for room_id, members in self.room_members.items() if user_id in members]

    async def display_name(self, user_id):
        return self.accounts.get(user_id, {}).get("displayname")

    async def room_creator(self, room_id):
        return self.room_creators.get(room_id)

    async def room_power_levels(self, room_id):
        return self.room_levels.get(room_id, {})

    async def make_room_admin(self, room_id):
        self.calls.append(("make_room_admin", room_id))

    async def close_room(self, room_id):
        self.calls.append(("close_room", room_id))

    async def send_state(self, token, room_id, event_type, state_key, content):
        # An empty content withdraws a rule: recorded as (..., None, None).
        self.calls.append(("state", room_id, event_type, content.get("entity"), content.get("recommendation")))

    async def server_notice(self, user_id, text):
        self.calls.append(("notice", user_id, text))

    async def suspend(self, user_id):
        self.calls.append(("suspend", user_id))

    async def unsuspend(self, user_id):
        self.calls.append(("unsuspend", user_id))

    async def shadow_ban(self, user_id):
        self.calls.append(("shadow_ban", user_id))

    async def lift_shadow_ban(self, user_id):
        self.calls.append(("lift_shadow_ban", user_id))

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




class FakeJanus:
    """The Janus adapter's contract (crossline.live.janus), recording what the hub asks of it."""

    def __init__(self):
        import asyncio

        self.calls: list[tuple] = []
        self.rooms: dict[int, object] = {}
        self.muted: dict[int, bool] = {}
        self.streams: dict[int, dict[str, int]] = {}
        self.queue: asyncio.Queue = asyncio.Queue()
        self._next = 1000

    def _id(self) -> int:
        self._next += 1
        return self._next

    async def create_room(self, description: str, max_publishers: int):
        from types import SimpleNamespace

        room = SimpleNamespace(room_id=self._id(), secret="room-secret", pin="room-pin")
        self.rooms[room.room_id] = room
        self.calls.append(("create_room", room.room_id))
        return room

    async def destroy_room(self, room) -> None:
        self.rooms.pop(room.room_id, None)
        self.calls.append(("destroy_room", room.room_id))

    async def join_publisher(self, room, feed_id: int, display: str) -> int:
        self.calls.append(("join_publisher", room.room_id, feed_id, display))
        return self._id()

    async def publish(self, handle: int, offer_sdp: str, *, audio_bitrate: int, video: bool, language) -> str:
        self.calls.append(("publish", handle, audio_bitrate, video, language))
        return "v=0 answer"

    async def subscribe(self, room, handle, feed_ids):
        handle = handle or self._id()
        self.calls.append(("subscribe", handle, list(feed_ids)))
        self.streams[handle] = {str(mid): feed for mid, feed in enumerate(feed_ids)}
        return handle, "v=0 offer"

    def subscription_streams(self, handle: int) -> dict[str, int]:
        return dict(self.streams.get(handle, {}))

    async def start_subscription(self, handle: int, answer_sdp: str) -> None:
        self.calls.append(("start_subscription", handle))

    async def moderate(self, room, feed_id: int, muted: bool) -> None:
        self.muted[feed_id] = muted
        self.calls.append(("moderate", feed_id, muted))

    async def kick(self, room, feed_id: int) -> None:
        self.calls.append(("kick", feed_id))

    async def detach(self, handle: int) -> None:
        self.calls.append(("detach", handle))

    async def events(self):
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        self.calls.append(("close",))


class RecordingAnnouncer:
    """Records what the bot would post for live sessions."""

    def __init__(self):
        self.keys: list[tuple[str, dict]] = []
        self.widgets: list[tuple[str, str, dict]] = []

    async def send_live_key(self, room_id: str, content: dict) -> None:
        self.keys.append((room_id, content))

    async def set_live_widget(self, room_id: str, state_key: str, content: dict) -> None:
        self.widgets.append((room_id, state_key, content))
