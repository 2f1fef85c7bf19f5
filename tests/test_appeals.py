"""Appeals no one decides twice (issue 27): two moderators who took no part in the decision under
appeal decide it, from two sides where the policy asks, and an upheld appeal can lift what the
decision did on the homeserver. Rules on plain data, then the service with a recording homeserver,
then the case page."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest
from sqlalchemy import text

from crossline.clock import token_hash
from crossline.domain import moderation as rules
from crossline.domain.moderation import Action, CaseFacts, CaseStatus, Moderator
from crossline.errors import Conflict, InvalidInput, NotAllowed
from crossline.services import moderation as service
from crossline.storage import members, rooms, sessions
from crossline.storage import moderation as store
from crossline.web.keys import HUB
from crossline.web.security import SESSION_COOKIE
from tests.test_web_reporting import client  # noqa: F401 - the web app fixture

LEFT, RIGHT = 1, 2
A, B = Moderator(1, LEFT, "@a"), Moderator(2, RIGHT, "@b")  # took the first decision: A proposed, B agreed
C, D, E = Moderator(3, LEFT, "@c"), Moderator(4, RIGHT, "@d"), Moderator(5, LEFT, "@e")  # no part in it
EVERYONE = (A, B, C, D, E)
HARASSER = "@harasser:crossline.local"


def appealed(status: CaseStatus = CaseStatus.APPEALED, deciders=(A, B)) -> CaseFacts:
    return CaseFacts(status, "!room:x", "$event", HARASSER, frozenset(m.member_id for m in deciders), None)


# -- The rule, on plain data ------------------------------------------------------------------------


@pytest.mark.parametrize("sides", [True, False])
@pytest.mark.parametrize("who", [A, B])
def test_the_first_decisions_moderators_may_not_propose_the_appeals_decision(who, sides):
    for action in (Action.DISMISS, Action.LIFT, Action.WARN):
        with pytest.raises(NotAllowed, match="took part in the decision under appeal") as refusal:
            rules.check_decision(appealed(), action, who, EVERYONE, sides)
        # The refusal names who may act instead: those who took no part (and can be paired).
        assert "@c" in str(refusal.value) and "@d" in str(refusal.value)
        assert "@a," not in str(refusal.value) and "@b," not in str(refusal.value)


@pytest.mark.parametrize("sides", [True, False])
@pytest.mark.parametrize("proposer, second", [(p, s) for p in (C, D, E) for s in (A, B)])
def test_the_first_decisions_moderators_may_not_agree_to_the_appeals_decision(proposer, second, sides):
    with pytest.raises(NotAllowed, match="took part in the decision under appeal"):
        rules.check_second(appealed(CaseStatus.AWAITING_SECOND), proposer, second, sides, on_appeal=True,
                           others=EVERYONE)


def test_every_pair_with_a_first_decision_moderator_in_it_is_refused_and_only_uninvolved_pairs_pass():
    """Every (proposer, second) pair over five moderators, both policies: a pair carries the appeal
    exactly when neither took part, they differ, and (when the policy asks) their sides differ."""
    for sides, (first, second) in itertools.product((True, False), itertools.permutations(EVERYONE, 2)):
        try:
            rules.check_decision(appealed(), Action.LIFT, first, EVERYONE, sides)
            rules.check_second(appealed(CaseStatus.AWAITING_SECOND), first, second, sides, True, EVERYONE)
            carried = True
        except NotAllowed:
            carried = False
        uninvolved = first not in (A, B) and second not in (A, B)
        assert carried == (uninvolved and (not sides or first.side_id != second.side_id)), (first, second, sides)


def test_a_same_side_pair_is_refused_when_the_policy_asks_and_the_refusal_names_who_may_agree():
    with pytest.raises(NotAllowed, match="two different sides") as refusal:
        rules.check_second(appealed(CaseStatus.AWAITING_SECOND), C, E, True, True, EVERYONE)
    assert str(refusal.value).endswith("Who may agree to it instead: @d.")
    rules.check_second(appealed(CaseStatus.AWAITING_SECOND), C, E, False, True, EVERYONE)  # the policy allows it
    with pytest.raises(NotAllowed, match="proposed this decision on appeal yourself"):
        rules.check_second(appealed(CaseStatus.AWAITING_SECOND), C, C, False, True, EVERYONE)


def test_who_may_decide_and_when_too_few_are_left():
    assert rules.who_may(appealed(), EVERYONE, None, True) == (C, D, E)
    assert rules.who_may(appealed(), EVERYONE, C, True) == (D,)
    # Only C and E (one side) took no part: with sides asked, nobody can propose; without, both can.
    case = appealed(deciders=(A, B, D))
    assert rules.who_may(case, EVERYONE, None, True) == ()
    assert rules.who_may(case, EVERYONE, None, False) == (C, E)
    with pytest.raises(NotAllowed, match="No moderator is left who may propose.*an admin can name another moderator"):
        rules.check_decision(case, Action.LIFT, A, EVERYONE, True)


def test_lifting_is_only_for_an_appeal():
    fresh = CaseFacts(CaseStatus.OPEN, "!room:x", "$event", HARASSER, frozenset(), None)
    with pytest.raises(InvalidInput, match="only for an appeal"):
        rules.check_decision(fresh, Action.LIFT, C)
    rules.check_decision(appealed(), Action.LIFT, C, EVERYONE, True)


# -- The service: the whole appeal on a real database ----------------------------------------------


@pytest.fixture
def mods(hub):
    """Five moderators, A and B having decided nothing yet: A, C, E on the left bank, B, D on the right."""
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        left, right = [r[0] for r in conn.execute(text("select id from sides order by id"))]
        hub.mods = {}
        for name, side in (("a", left), ("b", right), ("c", left), ("d", right), ("e", left)):
            member_id = members.add_member(conn, f"@{name}:crossline.local", line, side, frozenset({"moderator"}),
                                           None, 0)
            hub.mods[name] = members.get_member(conn, member_id)
        for room_id in ("!dialogue:crossline.local", "!other:crossline.local"):
            rooms.add_room(conn, room_id, line, "cross-line-dialogue", room_id, hub.facilitator.id, 0)
        hub.harasser = members.get_member(conn, members.add_member(conn, HARASSER, line, right,
                                                                   frozenset({"participant"}), None, 0))
    hub.homeserver.room_members["!dialogue:crossline.local"] = {HARASSER, "@alice:crossline.local"}
    return hub


async def decided_and_appealed(hub, actions=("ban_all", "suspend")) -> int:
    """A case about the harasser in the dialogue room, decided by A and B (a heavy decision), appealed."""
    hub.homeserver.matrix_reports["event_reports"].append(
        {"id": len(hub.homeserver.matrix_reports["event_reports"]) + 1, "room_id": "!dialogue:crossline.local",
         "event_id": "$abuse", "user_id": "@alice:crossline.local", "sender": HARASSER, "reason": "Insults"})
    (case_id,) = await service.take_in_matrix_reports(hub)
    assert "waiting for a second" in await service.decide(hub, hub.mods["a"], case_id, list(actions), "Insults")
    await service.agree(hub, hub.mods["b"], case_id)
    link = [c[2] for c in hub.homeserver.calls if c[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]
    service.appeal(hub, hub.harasser, link, "I was quoting him, not insulting her")
    return case_id


async def test_the_first_deciders_are_refused_at_each_step_and_two_uninvolved_moderators_carry_it(mods):
    a, b, c, d, e = (mods.mods[name] for name in "abcde")
    case_id = await decided_and_appealed(mods)
    for who in (a, b):
        with pytest.raises(NotAllowed, match="took part in the decision under appeal"):
            await service.decide(mods, who, case_id, ["lift"], "Overturned")
    # C proposes: the appeal waits for a second, even for a light action.
    assert "waiting for a second moderator who took no part" in \
        await service.decide(mods, c, case_id, ["lift"], "She was quoting him")
    assert not [call for call in mods.homeserver.calls if call[0] in ("unban", "unsuspend")]
    for who, refused in ((a, "took part in the decision under appeal"), (b, "took part in the decision under appeal"),
                         (c, "proposed this decision on appeal yourself"), (e, "two different sides")):
        with pytest.raises(NotAllowed, match=refused) as refusal:
            await service.agree(mods, who, case_id)
        assert "Who may agree to it instead: @d:crossline.local." in str(refusal.value)
    outcome = await service.agree(mods, d, case_id)
    assert "Lift the decision" in outcome and "no longer suspended" in outcome, outcome
    assert service.view(mods, c, case_id).case.status is CaseStatus.CLOSED
    # The appeal was decided once: nothing is waiting any more.
    with pytest.raises(Conflict):
        await service.agree(mods, e, case_id)


async def test_anyone_who_took_part_in_any_first_decision_is_out_even_one_that_failed(mods):
    """A first decision that failed on the homeserver, then another: both count as the decision
    under appeal. A decision on appeal that failed does not make its moderators part of it."""
    a, b, c, d, e = (mods.mods[name] for name in "abcde")
    mods.homeserver.matrix_reports["event_reports"].append(
        {"id": 1, "room_id": "!dialogue:crossline.local", "event_id": "$abuse", "user_id": "@alice:crossline.local",
         "sender": HARASSER, "reason": "Insults"})
    (case_id,) = await service.take_in_matrix_reports(mods)
    suspend = mods.homeserver.suspend

    async def refused(user_id):
        from crossline.errors import HomeserverError
        raise HomeserverError("The homeserver refused: 500")

    mods.homeserver.suspend = refused
    assert "could not be carried out" in await service.decide(mods, e, case_id, ["suspend"], "Insults")
    mods.homeserver.suspend = suspend
    await service.decide(mods, a, case_id, ["warn"], "Insults")
    link = [c[2] for c in mods.homeserver.calls if c[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]
    service.appeal(mods, mods.harasser, link, "Please look again")
    for who in (a, e):
        with pytest.raises(NotAllowed, match="took part"):
            await service.decide(mods, who, case_id, ["dismiss"], "Stands")
    await service.decide(mods, c, case_id, ["dismiss"], "Stands")
    with pytest.raises(NotAllowed, match="took part"):
        await service.agree(mods, e, case_id)
    assert "No action" in await service.agree(mods, b, case_id)


async def test_a_lift_undoes_bans_suspension_shadow_ban_and_the_rule_and_says_what_it_cannot(mods):
    c, d = mods.mods["c"], mods.mods["d"]
    case_id = await decided_and_appealed(mods, ("ban_all", "suspend", "shadow_ban"))
    calls = mods.homeserver.calls
    assert ("ban", "!dialogue:crossline.local", HARASSER) in calls
    await service.decide(mods, c, case_id, ["lift"], "Overturned")
    outcome = await service.agree(mods, d, case_id)
    assert "unbanned from 2 rooms, invited again to 1" in outcome, outcome
    assert {call[1] for call in calls if call[0] == "unban"} == {"!dialogue:crossline.local", "!other:crossline.local"}
    # Back only where she was: invited again to the dialogue room, not to the room she never joined.
    assert [call[1] for call in calls if call[0] == "invite_back"] == ["!dialogue:crossline.local"]
    assert ("unsuspend", HARASSER) in calls and ("lift_shadow_ban", HARASSER) in calls
    assert ("state", "!policy:crossline.local", "m.policy.rule.user", None, None) == \
        [call for call in calls if call[0] == "state"][-1]
    notice = [call[2] for call in calls if call[:2] == ("notice", HARASSER)][-1]
    assert "decided your appeal" in notice and "Lift the decision" in notice and "/appeal/" in notice


async def test_a_deactivation_cannot_be_lifted_and_the_outcome_says_so(mods):
    c, d = mods.mods["c"], mods.mods["d"]
    case_id = await decided_and_appealed(mods, ("deactivate",))
    await service.decide(mods, c, case_id, ["lift"], "Overturned")
    outcome = await service.agree(mods, d, case_id)
    assert "cannot undo a deactivation" in outcome and "withdrawn from the policy list" in outcome, outcome


async def test_a_lift_never_undoes_what_another_case_still_holds(mods):
    """Another case banned her from every hub room and suspended her: lifting this case's room ban
    and suspension leaves both."""
    a, b, c, d = (mods.mods[name] for name in "abcd")
    other = await decided_and_appealed(mods, ("ban_all", "suspend"))
    await service.decide(mods, c, other, ["dismiss"], "The ban stands")
    await service.agree(mods, d, other)
    case_id = await decided_and_appealed(mods, ("ban_room", "suspend", "deactivate"))
    before = len(mods.homeserver.calls)
    await service.decide(mods, c, case_id, ["lift"], "Overturned")
    outcome = await service.agree(mods, d, case_id)
    assert "another case's ban from every hub room still holds" in outcome
    assert "another case's suspension still holds" in outcome
    assert not [call for call in mods.homeserver.calls[before:] if call[0] in ("unban", "unsuspend", "invite_back")]


async def test_an_appeal_of_a_light_decision_also_needs_two_and_a_dismissal_lets_it_stand(mods):
    a, b, c, d = (mods.mods[name] for name in "abcd")
    mods.homeserver.matrix_reports["event_reports"].append(
        {"id": 1, "room_id": "!dialogue:crossline.local", "event_id": "$abuse", "user_id": "@alice:crossline.local",
         "sender": HARASSER, "reason": "Insults"})
    (case_id,) = await service.take_in_matrix_reports(mods)
    await service.decide(mods, a, case_id, ["ban_room"], "Insults")  # light: A alone
    link = [call[2] for call in mods.homeserver.calls if call[:2] == ("notice", HARASSER)][-1].split("/appeal/")[1]
    service.appeal(mods, mods.harasser, link, "Please look again")
    deciders = service.appeal_deciders(mods, c, case_id)
    assert deciders.step == "propose" and deciders.took_part == ("@a:crossline.local",)
    assert "@a:crossline.local" not in deciders.may and "@c:crossline.local" in deciders.may
    with pytest.raises(NotAllowed, match="took part"):
        await service.decide(mods, a, case_id, ["lift"], "Mine to undo")
    assert "waiting" in await service.decide(mods, b, case_id, ["dismiss"], "The ban stands")
    with pytest.raises(NotAllowed, match="took part"):
        await service.agree(mods, a, case_id)
    assert service.appeal_deciders(mods, c, case_id).may == ("@c:crossline.local", "@e:crossline.local")
    await service.agree(mods, c, case_id)
    assert not [call for call in mods.homeserver.calls if call[0] == "unban"]
    # She hears that her appeal was decided and the decision stands, and reads why, signed in.
    notice = [call[2] for call in mods.homeserver.calls if call[:2] == ("notice", HARASSER)][-1]
    assert "decided your appeal" in notice and "the decision stands" in notice
    view = service.decision_view(mods, mods.harasser, notice.split("/appeal/")[1])
    assert ("No action", "The ban stands") in view.decisions and not view.may_appeal


async def test_too_few_moderators_left_is_said_and_an_admin_can_name_another(mods):
    a, b, c, e = (mods.mods[name] for name in "abce")
    with mods.engine.begin() as conn:  # D is no longer a moderator: C and E are both on the left bank
        members.set_roles(conn, mods.mods["d"].id, frozenset({"participant"}))
        members.set_roles(conn, mods.admin.id, frozenset({"facilitator"}))  # an admin may moderate too
    case_id = await decided_and_appealed(mods)
    deciders = service.appeal_deciders(mods, c, case_id)
    assert deciders.may == () and deciders.different_sides
    # Where the policy lets one side decide, C and E can.
    policy = mods.config
    mods.config = replace(policy, moderation=replace(policy.moderation, second_moderator_from_other_side=False))
    assert service.appeal_deciders(mods, c, case_id).may == ("@c:crossline.local", "@e:crossline.local")
    mods.config = policy
    # C may still propose; nobody may agree, and a refusal says what an admin can do.
    await service.decide(mods, c, case_id, ["lift"], "Overturned")
    assert service.appeal_deciders(mods, c, case_id).may == ()
    with pytest.raises(NotAllowed, match="No moderator is left who may agree to it: an admin can name another"):
        await service.agree(mods, e, case_id)
    # An admin names another moderator, from the right bank: she may agree, and carries it.
    with mods.engine.begin() as conn:
        members.set_roles(conn, mods.mods["d"].id, frozenset({"moderator"}))
    assert service.appeal_deciders(mods, c, case_id).may == ("@d:crossline.local",)
    assert "no longer suspended" in await service.agree(mods, mods.mods["d"], case_id)


# -- The case page ----------------------------------------------------------------------------------


def _signed_in(hub, name: str, side_id=None) -> tuple[int, dict]:
    with hub.engine.begin() as conn:
        member = members.add_member(conn, f"@{name}:crossline.local", None, side_id, frozenset({"moderator"}), None, 0)
        sessions.add_session(conn, token_hash(f"{name}-session"), member, 0, int(time.time() * 1000) + 86_400_000)
    return member, {SESSION_COOKIE: f"{name}-session"}


async def test_the_case_page_says_who_may_decide_and_when_too_few_are_left(client):  # noqa: F811
    hub = client.app[HUB]
    a, _ = _signed_in(hub, "amira")
    b, _ = _signed_in(hub, "bogdana")
    _, cookie = _signed_in(hub, "carmen")
    with hub.engine.begin() as conn:
        case_id = store.add_case(conn, source="matrix_user", category=rules.Category.OTHER, urgent=False, now_ms=0,
                                 reported_user=HARASSER)
        decision = store.add_decision(conn, case_id, Action.BAN_ALL, service.seal(hub, "Insults"), a, "pending",
                                      False, 0)
        store.finish_decision(conn, decision, "done", 0, b)
        fresh = store.add_case(conn, source="matrix_user", category=rules.Category.OTHER, urgent=False, now_ms=0,
                               reported_user=HARASSER)
        store.set_status(conn, case_id, CaseStatus.APPEALED, 0)
    page = await (await client.get(f"/moderation/cases/{case_id}", cookies=cookie)).text()
    assert "This is an appeal" in page and "@amira:crossline.local, @bogdana:crossline.local" in page
    # Moderators without a side cannot make a pair from two sides: the page says so and what to do.
    assert 'id="too-few"' in page and "An admin can name another moderator" in page
    assert 'value="lift"' in page and "cannot be reactivated" in page
    page = await (await client.get(f"/moderation/cases/{fresh}", cookies=cookie)).text()
    assert "This is an appeal" not in page and 'value="lift"' not in page
