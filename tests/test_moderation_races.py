"""Two moderators acting on one case at the same moment: a decision or an agreement is carried out
once, never twice, and a stop in the middle of carrying one out leaves no case locked (review of
issue 27: the second agreement passed every check while the first's actions were still running)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from crossline.errors import Conflict
from crossline.services import moderation as service
from crossline.storage import moderation as store
from tests.test_moderation import matrix_case, mod  # noqa: F401 - the three-moderator hub fixture


def hold_the_homeserver(hub, method: str) -> asyncio.Event:
    """Holds every call of `method` until the returned event is set (an action still running)."""
    release = asyncio.Event()
    original = getattr(hub.homeserver, method)

    async def held(*args, **kwargs):
        await release.wait()
        return await original(*args, **kwargs)

    setattr(hub.homeserver, method, held)
    return release


def calls(hub, name: str) -> int:
    return sum(1 for call in hub.homeserver.calls if call[0] == name)


async def test_two_agreements_at_once_carry_the_actions_out_once(mod):  # noqa: F811
    mona, lena, rita = mod.mods["mona"], mod.mods["lena"], mod.mods["rita"]
    case_id = await matrix_case(mod)
    await service.decide(mod, lena, case_id, ["suspend", "ban_all"], "Threats across the line")
    release = hold_the_homeserver(mod, "suspend")
    first = asyncio.create_task(service.agree(mod, rita, case_id))
    await asyncio.sleep(0)  # the first agreement is now carrying the actions out
    while not any(d.agreed_by for d in _decisions(mod, case_id)):
        await asyncio.sleep(0.01)
    with pytest.raises(Conflict, match="agreed a moment ago"):
        await service.agree(mod, rita, case_id)
    with pytest.raises(Conflict):
        await service.agree(mod, mona, case_id)
    release.set()
    await first
    assert calls(mod, "suspend") == 1
    assert [d.status for d in _decisions(mod, case_id)] == ["done", "done"]


async def test_a_second_decision_while_the_first_is_carried_out_is_refused(mod):  # noqa: F811
    mona, rita = mod.mods["mona"], mod.mods["rita"]
    case_id = await matrix_case(mod)
    release = hold_the_homeserver(mod, "remove_from_room")
    first = asyncio.create_task(service.decide(mod, mona, case_id, ["kick"], "Shouting at people"))
    while not _decisions(mod, case_id):
        await asyncio.sleep(0.01)
    with pytest.raises(Conflict, match="being carried out"):
        await service.decide(mod, rita, case_id, ["kick"], "Shouting at people")
    release.set()
    await first
    assert calls(mod, "kick") == 1


async def test_a_decision_cut_short_by_a_stop_waits_for_a_decision_again(mod):  # noqa: F811
    mona, lena, rita = mod.mods["mona"], mod.mods["lena"], mod.mods["rita"]
    light = await matrix_case(mod)
    heavy = await matrix_case(mod, "Another threat")
    proposal = await matrix_case(mod, "Spam")
    with mod.engine.begin() as conn:  # as a stop leaves them: pending, one light, one agreed to
        store.add_decision(conn, light, service.Action.KICK, b"", mona.id, "pending", False, 0)
        store.add_decision(conn, heavy, service.Action.BAN_ALL, b"", lena.id, "pending", False, 0)
        store.set_status(conn, heavy, service.CaseStatus.AWAITING_SECOND, 0)
        store.claim_agreement(conn, heavy, rita.id)
    await service.decide(mod, lena, proposal, ["ban_all"], "Spam everywhere")  # waits for a second: untouched
    assert sorted(service.recover_interrupted(mod)) == sorted([light, heavy])
    with mod.engine.connect() as conn:
        statuses = dict(conn.execute(text("select id, status from moderation_cases")).all())
    assert statuses[light] == "open" and statuses[heavy] == "open" and statuses[proposal] == "awaiting_second"
    await service.decide(mod, rita, light, ["warn"], "Please stop")  # the case is no longer locked
    with mod.engine.connect() as conn:
        last = list(service.audit.entries(conn, heavy))[-1].entry
    assert last["kind"] == "action_failed" and last["details"]["interrupted"] is True
    assert last["details"]["may_have_taken_effect"] is True
    assert service.recover_interrupted(mod) == []


def _decisions(hub, case_id):
    with hub.engine.connect() as conn:
        return store.list_decisions(conn, case_id)
