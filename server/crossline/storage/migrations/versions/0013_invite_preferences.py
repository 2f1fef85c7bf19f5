"""Whom each member takes Matrix invitations from (issue 26): nobody, people she shares a room with,
or people of her line. No row: the default, people she shares a room with."""

import sqlalchemy as sa
from alembic import op

revision = "0013"
# 0011 and 0012 were handed to other tasks and had not landed when this was written: if they do,
# this must chain onto 0012 instead.
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "invite_preferences",
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("invites_from", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("invite_preferences")
