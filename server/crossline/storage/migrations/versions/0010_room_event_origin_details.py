"""Room commands' origins, in more detail: the room each event was sent in (an edit or deletion
sent in another room is ignored), the votes a vote event cast (an edit replaces them), and
whether a statement's words were edited (a facilitator must approve the words she read)."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("room_event_origins") as batch:
        batch.add_column(sa.Column("room_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("votes", sa.Text, nullable=True))
        batch.add_column(sa.Column("edited", sa.Boolean, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("room_event_origins") as batch:
        batch.drop_column("edited")
        batch.drop_column("votes")
        batch.drop_column("room_id")
