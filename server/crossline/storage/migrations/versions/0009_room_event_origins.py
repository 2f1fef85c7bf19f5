"""Room commands' origins: the member who sent each vote or statement event and the statement it
made, so that an edit counts only from its sender and a statement can be edited or withdrawn by
editing or deleting its message."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "room_event_origins",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
        sa.Column("statement_id", sa.Integer, sa.ForeignKey("statements.id", ondelete="CASCADE"), nullable=True),
        sa.Column("recorded_at", sa.BigInteger, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("room_event_origins")
