"""Lifting a decision on appeal: what the decision under appeal did on the homeserver is undone
where it can be (room bans, a hub-wide ban, a suspension, a shadow-ban, the published policy
rule), and said plainly where it cannot (a deactivated account, a removed message).

What another case still holds against the same account stays: lifting one decision never
undoes another case's ban or suspension."""

from __future__ import annotations

from crossline.domain.moderation import Action
from crossline.errors import HomeserverError
from crossline.services import member_rooms
from crossline.services.hub import Hub
from crossline.storage import appeals as appeal_store
from crossline.storage import moderation as store
from crossline.storage import rooms as room_store
from crossline.storage.moderation import Case

RULE = "m.policy.rule.user"
CANNOT = {
    Action.DEACTIVATE: "the account stays deactivated: the hub cannot undo a deactivation (a new account, "
                       "invited again, is the only way back)",
    Action.REDACT: "the removed message cannot be restored",
}


async def lift(hub: Hub, case: Case, policy_room: str | None) -> str:
    """Undoes the actions carried out in the case's decisions not on appeal; returns what was done."""
    user = case.reported_user
    with hub.engine.connect() as conn:
        done = {d.action for d in store.list_decisions(conn, case.id) if not d.on_appeal and d.status == "done"}
        standing = appeal_store.standing(conn, user, case.id)
        hub_rooms = {room.room_id for room in room_store.list_rooms(conn)}
    held = {action for action, _ in standing}
    held_rooms = {room for action, room in standing if action in (Action.BAN_ROOM, Action.KICK)}
    said: list[str] = []
    if Action.BAN_ALL in held and done & {Action.BAN_ROOM, Action.BAN_ALL, Action.KICK}:
        said.append("the bans stay: another case's ban from every hub room still holds")
    elif done & {Action.BAN_ROOM, Action.BAN_ALL, Action.KICK}:
        rooms = {case.room_id} if done & {Action.BAN_ROOM, Action.KICK} else set()
        if Action.BAN_ALL in done:
            rooms |= await _rooms_banned_by_the_hub(hub, user, hub_rooms)
        said.append(await _let_back(hub, user, sorted(r for r in rooms if r and r not in held_rooms)))
        if rooms & held_rooms:
            said.append(f"{len(rooms & held_rooms)} rooms stay closed to the person: another case removed "
                        "her from them")
    for action, undo, undone, kept in (
            (Action.SUSPEND, hub.homeserver.unsuspend, "the account is no longer suspended",
             "the suspension stays: another case's suspension still holds"),
            (Action.SHADOW_BAN, hub.homeserver.lift_shadow_ban, "the account is no longer shadow-banned",
             "the shadow-ban stays: another case's shadow-ban still holds")):
        if action in done:
            if action in held:
                said.append(kept)
            else:
                await undo(user)
                said.append(undone)
    if policy_room and done & {Action.BAN_ROOM, Action.BAN_ALL, Action.DEACTIVATE}:
        # An empty content withdraws the rule (how Draupnir and Mjolnir read a removed rule).
        await hub.homeserver.send_state(hub.homeserver.admin_token, policy_room, RULE, f"crossline-case-{case.id}", {})
        said.append("the ban is withdrawn from the policy list")
    said += [text for action, text in CANNOT.items() if action in done]
    return "; ".join(said) or "the decision under appeal did nothing on the homeserver to undo"


async def _rooms_banned_by_the_hub(hub: Hub, user: str, hub_rooms: set[str]) -> set[str]:
    """Hub rooms she is banned from, and rooms members made where the hub's admin account banned
    her (a ban by the room's own people is theirs to lift)."""
    rooms = set()
    for room_id, membership in (await hub.homeserver.memberships(user)).items():
        if membership != "ban":
            continue
        if room_id in hub_rooms:
            rooms.add(room_id)
            continue
        ban = await hub.homeserver.ban_of(room_id, user)
        if ban and ban[0] == hub.config.hub_admin_user_id:
            rooms.add(room_id)
    return rooms


async def _let_back(hub: Hub, user: str, rooms: list[str]) -> str:
    """Unbans her, and invites her again where she was a member (or invited) before: a room she
    was never in stays one she was never in."""
    unbanned = invited = refused = 0
    for room_id in rooms:
        ban = await hub.homeserver.ban_of(room_id, user)
        membership = (await hub.homeserver.memberships(user)).get(room_id) if ban is None else "ban"
        async with member_rooms.room_admin_token(hub, room_id) as token:
            if ban is not None:
                await hub.homeserver.unban(token, room_id, user)
                unbanned += 1
            before = ban[1] if ban else ("join" if membership == "leave" else None)
            if before in ("join", "invite"):
                try:
                    await hub.homeserver.invite(token, room_id, user)
                    invited += 1
                except HomeserverError:
                    refused += 1
    return (f"unbanned from {unbanned} rooms, invited again to {invited}"
            + (f" ({refused} invitations were refused: a facilitator can invite her again)" if refused else ""))
