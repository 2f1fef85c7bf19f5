"""The hub never publishes a moderator's reason in a room: Synapse would keep it in clear, and
our module refuses reasons (against a real Synapse: test_e2e_allowlist.py)."""

from __future__ import annotations

from sqlalchemy import text

from crossline.services import moderation
from crossline.storage import members, rooms

HARASSER = "@harasser:crossline.local"
REASON = "Harassment of another member, see the screenshots"


async def test_a_ban_publishes_a_policy_rule_without_the_moderators_reason(hub):
    with hub.engine.begin() as conn:
        line = conn.execute(text("select id from lines")).scalar()
        side = conn.execute(text("select id from sides order by id")).scalar()
        moderator = members.get_member(conn, members.add_member(conn, "@mona:crossline.local", line, side,
                                                                frozenset({"moderator"}), None, 0))
        rooms.add_room(conn, "!dialogue:crossline.local", line, "cross-line-dialogue", "Dialogue", hub.facilitator.id, 0)
    hub.homeserver.matrix_reports["event_reports"].append(
        {"id": 1, "room_id": "!dialogue:crossline.local", "event_id": "$abuse", "user_id": "@alice:crossline.local",
         "sender": HARASSER, "reason": "He insults me"})
    (case_id,) = await moderation.take_in_matrix_reports(hub)
    published = []

    async def send_state(token, room_id, event_type, state_key, content):
        published.append((event_type, content))

    hub.homeserver.send_state = send_state
    await moderation.decide(hub, moderator, case_id, ["ban_room"], REASON)
    assert published == [("m.policy.rule.user", {"entity": HARASSER, "recommendation": "m.ban",
                                                 "reason": f"Crossline moderation, case {case_id}"})]
