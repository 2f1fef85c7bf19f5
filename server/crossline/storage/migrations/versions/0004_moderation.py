"""Moderation: cases, sealed evidence, decisions, and the hash-chained audit log."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "moderation_cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("synapse_report", sa.String(64), nullable=True, unique=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("reported_user", sa.String(255), nullable=True),
        sa.Column("reporter_member_id", sa.Integer, sa.ForeignKey("members.id"), nullable=True),
        sa.Column("reporter_user_id", sa.String(255), nullable=True),
        sa.Column("reason_sealed", sa.LargeBinary, nullable=True),
        sa.Column("contact_sealed", sa.LargeBinary, nullable=True),
        sa.Column("status_token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("appeal_token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("reporter_wants_action", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("assigned_to", sa.Integer, sa.ForeignKey("members.id"), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Index("ix_moderation_cases_status", "status", "urgent"),
    )
    op.create_table(
        "moderation_evidence",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("moderation_cases.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "moderation_decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("moderation_cases.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("proposed_by", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("agreed_by", sa.Integer, sa.ForeignKey("members.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("on_appeal", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("executed_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("case_id", sa.Integer, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "moderation_decisions", "moderation_evidence", "moderation_cases"):
        op.drop_table(table)
