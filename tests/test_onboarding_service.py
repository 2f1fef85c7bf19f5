"""Onboarding rules with a fake homeserver and clock (unit level: the real one is in the e2e tests)."""

from __future__ import annotations

import hashlib
import json

import pytest

from crossline.errors import Gone, NotAllowed
from crossline.services import onboarding
from crossline.services.hub import Hub
from crossline.storage import members
from tests.fakes import HOUR_MS


def leave_claim(hub: Hub, code: str, localpart: str) -> None:
    """As our Synapse module does: named by the hash of the token Synapse saw."""
    token = onboarding.registration_token(hub, code)
    path = hub.config.paths.registration_claims_dir / hashlib.sha256(token.encode()).hexdigest()
    path.write_text(json.dumps({"localpart": localpart}))


async def test_invitation_is_a_registration_token_with_the_same_expiry(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    token = onboarding.registration_token(hub, issued.code)
    assert hub.homeserver.tokens == {token: issued.invitation.expires_at}
    assert issued.invitation.expires_at == hub.clock.now + 72 * HOUR_MS
    assert issued.link.endswith(f"/join/{issued.code}")


async def test_synapse_never_holds_the_invitation_code(hub):
    """Synapse keeps a keyed derivation of the code: its database alone opens no invitation."""
    issued = await onboarding.issue_invitation(hub, hub.admin, 1, None, frozenset({"moderator"}))
    (token,) = hub.homeserver.tokens
    assert issued.code not in token and len(token) == 43
    assert await onboarding.invitation_for_code(hub, issued.code)
    with pytest.raises(Gone):
        await onboarding.invitation_for_code(hub, token)  # what a copy of Synapse's database shows


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
    assert (hub.config.paths.registration_claims_dir / onboarding.invitation_hash(hub, issued.code)).exists()


async def test_an_expired_invitation_is_refused(hub):
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    hub.clock.now += 73 * HOUR_MS
    with pytest.raises(Gone, match="expired"):
        await onboarding.invitation_for_code(hub, issued.code)


async def test_a_participant_needs_a_side(hub):
    with pytest.raises(onboarding.InvalidInput, match="Choose the side"):
        await onboarding.issue_invitation(hub, hub.facilitator, 1, None, frozenset({"participant"}))
