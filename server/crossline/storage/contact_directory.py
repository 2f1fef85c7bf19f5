"""What the hub publishes to its Synapse module about who may invite whom (see services/hub.py)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from crossline.storage.schema import invite_preferences


def preferences(conn: Connection) -> dict[int, str]:
    """Member id -> whom she takes invitations from, for those who chose."""
    return dict(conn.execute(select(invite_preferences.c.member_id, invite_preferences.c.invites_from)).all())
