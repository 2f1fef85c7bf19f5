"""Consultations: questions, statements, votes; web-only participants; the bot's bookkeeping
(processed events, sync position, outbox, question messages)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # A participant may take part on the web only, without a Matrix account.
    with op.batch_alter_table("members") as batch:
        batch.alter_column("matrix_user_id", existing_type=sa.String(255), nullable=True)
        batch.add_column(sa.Column("web_handle", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_members_web_handle", ["web_handle"])
    op.create_table(
        "web_access_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("line_id", sa.Integer, sa.ForeignKey("lines.id"), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("premoderation", sa.Boolean, nullable=False),
        sa.Column("room_id", sa.String(255), nullable=True, unique=True),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("phase_changed_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "consultation_sides",
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("side_id", sa.Integer, sa.ForeignKey("sides.id"), primary_key=True),
    )
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("prompts", sa.Text, nullable=False),  # JSON: {language: text}
        sa.UniqueConstraint("consultation_id", "position", name="uq_questions_position"),
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("author_member_id", sa.Integer, sa.ForeignKey("members.id"), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seeded", sa.Boolean, nullable=False),
        sa.Column("moderation_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("consultation_id", "number", name="uq_statements_number"),
        sa.Index("ix_statements_consultation_status", "consultation_id", "status"),
    )
    op.create_table(
        "votes",
        # One row per participant and statement: the latest vote replaces the earlier one.
        sa.Column("statement_id", sa.Integer, sa.ForeignKey("statements.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id"), primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("value", sa.SmallInteger, nullable=False),  # 1 agree, -1 disagree, 0 pass
        sa.Column("voted_at", sa.BigInteger, nullable=False),
        sa.Index("ix_votes_consultation_member", "consultation_id", "member_id"),
    )
    op.create_table(
        "web_submissions",
        # A form retried after a network error carries the same submission id: applied once.
        sa.Column("member_id", sa.Integer, sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("submission_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("processed_at", sa.BigInteger, nullable=False, index=True),
    )
    op.create_table(
        "bot_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "outbox",
        # Bot messages decided inside a transaction, sent after it commits, deleted once sent.
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("txn_id", sa.String(255), nullable=False, unique=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("consultation_id", sa.Integer, nullable=True),
        sa.Column("question_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "bot_messages",
        # The bot's own question posts, so that a reply to one is a statement for that question.
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=True),
    )
    op.create_table(
        "pending_events",
        # Encrypted events the bot could not decrypt yet (its room key had not arrived).
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
    )
