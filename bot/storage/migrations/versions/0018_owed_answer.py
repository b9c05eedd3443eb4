"""follower.owed_since: a follower the queue's timeout gave back to the bot is still owed a person's answer

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follower") as batch:
        batch.add_column(sa.Column("owed_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_follower_owed_since", "follower", ["owed_since"])


def downgrade() -> None:
    op.drop_index("ix_follower_owed_since", table_name="follower")
    with op.batch_alter_table("follower") as batch:
        batch.drop_column("owed_since")
