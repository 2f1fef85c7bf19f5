"""Moderators' reasons sealed like other case content (issue 27): decisions get `reason_sealed`
(XSalsa20-Poly1305 with the evidence key). A migration cannot read the key, so reasons written
before stay in `reason` until the hub's next start seals them and empties the column
(services/moderation.seal_clear_reasons)."""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    with op.batch_alter_table("moderation_decisions") as batch:
        batch.add_column(sa.Column("reason_sealed", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moderation_decisions") as batch:
        batch.drop_column("reason_sealed")
