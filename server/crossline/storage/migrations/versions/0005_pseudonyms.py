"""Pseudonyms: moderator keys, the escrow and its shares, sealed links, unmasking requests."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "moderator_keys",
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("encrypted_private_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "escrows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "escrow_shares",
        sa.Column("escrow_id", sa.Integer, sa.ForeignKey("escrows.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed_share", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "pseudonyms",
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("person_tag", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("escrow_id", sa.Integer, sa.ForeignKey("escrows.id"), nullable=False),
        sa.Column("sealed_link", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("consultation_id", "person_tag", name="uq_pseudonyms_one_per_person"),
    )
    op.create_table(
        "unmask_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("moderation_cases.id"), nullable=False),
        sa.Column("pseudonym_member_id", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_user_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "unmask_shares",
        sa.Column("request_id", sa.Integer, sa.ForeignKey("unmask_requests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id"), primary_key=True),
        sa.Column("share_index", sa.Integer, nullable=False),
        sa.Column("share", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("unmask_shares", "unmask_requests", "pseudonyms", "escrow_shares", "escrows", "moderator_keys"):
        op.drop_table(table)
