"""Threshold escrow: unmasking by partial decryptions bound to one request, no shares in clear.

What happens to what was made before this migration (Crossline was not released yet):
- `unmask_shares` is dropped with whatever it held: shares given for unfinished requests were
  stored in clear there and together could rebuild an escrow key. Open requests become
  "expired"; moderators open a new request, which the new scheme serves.
- Escrows made before are kept and marked scheme "shamir-x25519". The hub no longer opens them:
  a request to unmask a pseudonym sealed under such an escrow is refused with a message saying
  so, and new pseudonyms are sealed only to an escrow set up again under the new scheme (the
  escrow page asks the admin to do that). Their sealed shares stay sealed to the moderators.
- Pseudonyms made before count as already invited; their creation times are not rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("escrows") as batch:
        batch.add_column(sa.Column("scheme", sa.String(32), nullable=False, server_default="shamir-x25519"))
    with op.batch_alter_table("escrow_shares") as batch:
        batch.add_column(sa.Column("share_index", sa.Integer, nullable=True))
        batch.add_column(sa.Column("verification_key", sa.LargeBinary, nullable=True))
    with op.batch_alter_table("pseudonyms") as batch:
        batch.add_column(sa.Column("invitation", sa.String(8), nullable=False, server_default="sent"))
    op.create_table("pseudonym_pool", sa.Column("user_id", sa.String(255), primary_key=True),
                    sa.Column("ready", sa.Boolean, nullable=False, server_default="0"))

    op.drop_table("unmask_shares")
    with op.batch_alter_table("unmask_requests") as batch:
        batch.add_column(sa.Column("expires_at", sa.BigInteger, nullable=True))
    op.execute("UPDATE unmask_requests SET status = 'expired', expires_at = created_at WHERE status = 'open'")
    op.create_index("uq_unmask_one_open_request", "unmask_requests", ["pseudonym_member_id"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "unmask_partials",
        sa.Column("request_id", sa.Integer, sa.ForeignKey("unmask_requests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("share_index", sa.Integer, nullable=False),
        sa.Column("sealed_blind", sa.LargeBinary, nullable=False),
        sa.Column("blind_key", sa.LargeBinary, nullable=False),
        sa.Column("partial", sa.LargeBinary, nullable=True),
        sa.Column("proof", sa.LargeBinary, nullable=True),
    )


def downgrade() -> None:
    """Back to 0005's tables; threshold escrows cannot be opened by 0005's code."""
    op.drop_table("unmask_partials")
    op.drop_index("uq_unmask_one_open_request", table_name="unmask_requests")
    with op.batch_alter_table("unmask_requests") as batch:
        batch.drop_column("expires_at")
    op.create_table(
        "unmask_shares",
        sa.Column("request_id", sa.Integer, sa.ForeignKey("unmask_requests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id"), primary_key=True),
        sa.Column("share_index", sa.Integer, nullable=False),
        sa.Column("share", sa.LargeBinary, nullable=False),
    )
    op.drop_table("pseudonym_pool")
    with op.batch_alter_table("pseudonyms") as batch:
        batch.drop_column("invitation")
    with op.batch_alter_table("escrow_shares") as batch:
        batch.drop_column("verification_key")
        batch.drop_column("share_index")
    with op.batch_alter_table("escrows") as batch:
        batch.drop_column("scheme")
