"""Reports: drafts and signed releases of a consultation's report."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("narrative", sa.Text, nullable=False, server_default=""),
        sa.Column("replaces_id", sa.Integer, sa.ForeignKey("reports.id"), nullable=True),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("released_at", sa.BigInteger, nullable=True),
        sa.Column("document", sa.LargeBinary, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("delivered_to_room", sa.String(255), nullable=True),
        sa.UniqueConstraint("consultation_id", "version", name="uq_reports_version"),
    )


def downgrade() -> None:
    op.drop_table("reports")
