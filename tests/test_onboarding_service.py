"""Onboarding rules with a fake homeserver and clock (unit level: the real one is in the e2e tests)."""

from __future__ import annotations

import hashlib
import json

import pytest

from crossline.errors import Gone, NotAllowed
from crossline.services import onboarding
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

    async def create_registration_token(self, token: str, expiry_ms: int) -> None:
        self.tokens[token] = expiry_ms

    async def user_info(self, user_id: str) -> dict | None:
        return self.accounts.get(user_id)


@pytest.fixture
def hub(tmp_path):
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


def leave_claim(hub: Hub, code: str, localpart: str) -> None:
    path = hub.config.paths.registration_claims_dir / hashlib.sha256(code.encode()).hexdigest()
    path.write_text(json.dumps({"localpart": localpart}))


async def test_invitation_is_a_registration_token_with_the_same_expiry(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    assert hub.homeserver.tokens[issued.code] == issued.invitation.expires_at == hub.clock.now + 72 * HOUR_MS
    assert issued.link.endswith(f"/join/{issued.code}")


async def test_only_an_admin_hands_out_powerful_roles(hub):
    with pytest.raises(NotAllowed, match="Only an admin"):
        await onboarding.issue_invitation(hub, hub.facilitator, 1, None, frozenset({"moderator"}))
    issued = await onboarding.issue_invitation(hub, hub.admin, 1, None, frozenset({"moderator"}))
    assert issued.invitation.roles == frozenset({"moderator"})


async def test_a_claim_for_a_new_account_makes_a_member_of_the_right_side(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 2, frozenset({"participant"}))
    hub.clock.now += 60_000
    leave_claim(hub, issued.code, "nina")
    hub.homeserver.accounts["@nina:crossline.local"] = {"creation_ts": hub.clock.now // 1000, "admin": False}
    assert await onboarding.collect_registration_claims(hub) == 1
    with hub.engine.connect() as conn:
        nina = members.find_by_user_id(conn, "@nina:crossline.local")
    assert (nina.line_id, nina.side_id, nina.roles) == (1, 2, frozenset({"participant"}))
    known = json.loads(hub.config.paths.known_members.read_text())["user_ids"]
    assert "@nina:crossline.local" in known
    with pytest.raises(Gone, match="already been used"):
        await onboarding.invitation_for_code(hub, issued.code)


async def test_a_claim_naming_an_older_account_is_ignored(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    leave_claim(hub, issued.code, "oldtimer")
    hub.homeserver.accounts["@oldtimer:crossline.local"] = {"creation_ts": 1, "admin": False}
    await onboarding.collect_registration_claims(hub)
    with hub.engine.connect() as conn:
        assert members.find_by_user_id(conn, "@oldtimer:crossline.local") is None
    invitation, _ = await onboarding.invitation_for_code(hub, issued.code)
    assert invitation.used_at is None


async def test_a_claim_for_an_account_not_yet_created_waits(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    leave_claim(hub, issued.code, "slow")
    assert await onboarding.collect_registration_claims(hub) == 0
    assert (hub.config.paths.registration_claims_dir / hashlib.sha256(issued.code.encode()).hexdigest()).exists()


async def test_an_expired_invitation_is_refused(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    hub.clock.now += 73 * HOUR_MS
    with pytest.raises(Gone, match="expired"):
        await onboarding.invitation_for_code(hub, issued.code)


async def test_a_participant_needs_a_side(hub):
    with pytest.raises(onboarding.InvalidInput, match="Choose the side"):
        await onboarding.issue_invitation(hub, hub.facilitator, 1, None, frozenset({"participant"}))
