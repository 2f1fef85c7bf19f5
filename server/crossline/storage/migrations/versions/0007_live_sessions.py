"""Live sessions: the session, its named interpreters, who takes part while it runs, and each
side's speaking seconds and head count once it ends. No key column anywhere: keys stay in memory."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "live_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(64), nullable=False, unique=True),
        sa.Column("line_id", sa.Integer, sa.ForeignKey("lines.id"), nullable=False),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=True,
                  index=True),
        sa.Column("hub_room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=True, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_at", sa.BigInteger, nullable=True),
        sa.Column("janus_room_id", sa.BigInteger, nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("keys_to_room", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "live_interpreters",
        sa.Column("live_session_id", sa.Integer, sa.ForeignKey("live_sessions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("language", sa.String(16), nullable=False),
    )
    op.create_table(
        "live_participants",
        sa.Column("live_session_id", sa.Integer, sa.ForeignKey("live_sessions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("removed", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_table(
        "live_side_totals",
        sa.Column("live_session_id", sa.Integer, sa.ForeignKey("live_sessions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("side", sa.String(200), primary_key=True),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("participants", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("live_side_totals", "live_participants", "live_interpreters", "live_sessions"):
        op.drop_table(table)
