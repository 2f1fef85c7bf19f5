"""Case numbers are never used twice (review of issue 27): retention now keeps a deleted case as
a tombstone (status "deleted", nothing of its content) instead of removing its row, because on
SQLite a removed newest row frees its number for the next case, and audit entries are found by
case number. Cases removed before this migration get their tombstone back here, from the audit
log that still names them, so that no new case takes their numbers either. No schema change."""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
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
