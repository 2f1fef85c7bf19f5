"""One voice per person per consultation (her own or her pseudonym's): guard rows keyed by the
person tag, which her own first vote or statement and her pseudonym's making both insert.

Existing pseudonyms take their voices here. Her own earlier participation cannot be keyed here
(the tag key is a secret file the migration does not read); it is claimed when she next votes or
writes, and until then the pseudonym page's check of her earlier votes and statements (already
committed, so not racing) refuses her a pseudonym there."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "consultation_voices",
        sa.Column("consultation_id", sa.Integer, sa.ForeignKey("consultations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("person_tag", sa.String(64), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO consultation_voices (consultation_id, person_tag) "
               "SELECT consultation_id, person_tag FROM pseudonyms")


def downgrade() -> None:
    op.drop_table("consultation_voices")
