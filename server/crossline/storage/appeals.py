"""What other cases still hold against an account, so that lifting one decision on appeal never
undoes another case's ban or suspension."""

from __future__ import annotations

from sqlalchemy import Connection, select

from crossline.domain.moderation import Action
from crossline.storage.schema import moderation_cases as cases
from crossline.storage.schema import moderation_decisions as decisions


def standing(conn: Connection, user_id: str, except_case: int) -> list[tuple[Action, str | None]]:
    """(action, the case's room) for every decision carried out on this account in another case
    and not lifted on appeal since."""
    rows = conn.execute(
        select(decisions.c.case_id, decisions.c.id, decisions.c.action, cases.c.room_id)
        .join(cases, cases.c.id == decisions.c.case_id)
        .where(cases.c.reported_user == user_id, cases.c.id != except_case, decisions.c.status == "done")
        .order_by(decisions.c.id)).all()
    lifted = {case_id: decision_id for case_id, decision_id, action, _ in rows if action == Action.LIFT.value}
    return [(Action(action), room_id) for case_id, decision_id, action, room_id in rows
            if action != Action.LIFT.value and decision_id > lifted.get(case_id, -1)]
