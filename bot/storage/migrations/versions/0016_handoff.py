"""handoff: follower.paused_by widened for "agent:<id>", follower.handoff_told_at, message.sent_by; inbox indexes

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follower") as batch:
        batch.alter_column("paused_by", existing_type=sa.String(length=32), type_=sa.String(length=80),
                           existing_nullable=True)
        batch.add_column(sa.Column("handoff_told_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_follower_last_action_at", "follower", ["last_action_at"])
    op.create_index("ix_follower_paused_by", "follower", ["paused_by", "paused_at"])
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("sent_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("sent_by")
    op.drop_index("ix_follower_paused_by", table_name="follower")
    op.drop_index("ix_follower_last_action_at", table_name="follower")
    # Before 0016 only the platform's desk paused the bot: the queue and agents' pauses end here.
    op.execute("UPDATE follower SET paused_by = NULL WHERE paused_by <> 'platform'")
    with op.batch_alter_table("follower") as batch:
        batch.drop_column("handoff_told_at")
        batch.alter_column("paused_by", existing_type=sa.String(length=80), type_=sa.String(length=32),
                           existing_nullable=True)
