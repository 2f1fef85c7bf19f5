"""Case numbers are never used twice (review of issue 27): retention now keeps a deleted case as
a tombstone (status "deleted", nothing of its content) instead of removing its row, because on
SQLite a removed newest row frees its number for the next case, and audit entries are found by
case number. Cases removed before this migration get their tombstone back here, from the audit
log that still names them, so that no new case takes their numbers either.

Unmasking requests' reasons (moderator-written case content) get `reason_sealed`, as decisions'
reasons in 0015: those written before stay in `reason` until the hub's next start seals them
(services/moderation.seal_clear_reasons)."""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    with op.batch_alter_table("unmask_requests") as batch:
        batch.add_column(sa.Column("reason_sealed", sa.LargeBinary, nullable=True))
    op.execute(sa.text(
        "INSERT INTO moderation_cases (id, source, category, urgent, status, reporter_wants_action, created_at, "
        "updated_at) SELECT case_id, 'deleted', 'other', :no, 'deleted', :yes, MIN(at), MAX(at) FROM audit_log "
        "WHERE case_id IS NOT NULL AND case_id NOT IN (SELECT id FROM moderation_cases) GROUP BY case_id"
    ).bindparams(no=False, yes=True))


def downgrade() -> None:
    # The code before knows no tombstone: they go, as retention removed cases then.
    op.execute("DELETE FROM moderation_decisions WHERE case_id IN (SELECT id FROM moderation_cases "
               "WHERE status = 'deleted')")
    op.execute("DELETE FROM moderation_cases WHERE status = 'deleted'")
    with op.batch_alter_table("unmask_requests") as batch:
        batch.drop_column("reason_sealed")
