"""Keyed audit entries (issue 27): each entry's MAC with the hub's audit key, which is derived from
a secret file and never stored in the database. Entries written before stay without one; the
chain and the signed heads posted from now on cover them."""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("mac", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
