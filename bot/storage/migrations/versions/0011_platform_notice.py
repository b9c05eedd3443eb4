"""platform notices: platform_notice (recorded, never answered); follower pause and last location

Revision ID: 0011
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_notice",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("follower_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["follower_id"], ["follower.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "account", "dedupe_key"),
    )
    op.create_index("ix_platform_notice_subject", "platform_notice", ["channel", "account", "event", "subject"])
    with op.batch_alter_table("follower") as batch:
        batch.add_column(sa.Column("paused_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_longitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_located_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follower") as batch:
        batch.drop_column("last_located_at")
        batch.drop_column("last_longitude")
        batch.drop_column("last_latitude")
        batch.drop_column("paused_at")
        batch.drop_column("paused_by")
    op.drop_index("ix_platform_notice_subject", table_name="platform_notice")
    op.drop_table("platform_notice")
