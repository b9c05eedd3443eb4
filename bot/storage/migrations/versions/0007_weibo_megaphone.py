"""weibo megaphone: weibo_public_reply (each public item answered once) and weibo_poll_state (cursors, lease)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weibo_public_reply",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("item_key", sa.String(length=48), nullable=False),
        sa.Column("post_id", sa.String(length=24), nullable=False),
        sa.Column("cid", sa.String(length=24), nullable=True),
        sa.Column("user_id", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("reply_text", sa.String(length=160), nullable=True),
        sa.Column("attempted", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weibo_public_reply")),
        sa.UniqueConstraint("account", "item_key", name=op.f("uq_weibo_public_reply_account_item_key")),
    )
    op.create_index("ix_weibo_public_reply_sent", "weibo_public_reply", ["account", "sent_at"], unique=False)
    op.create_table(
        "weibo_poll_state",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("since_comments", sa.String(length=24), nullable=False),
        sa.Column("since_mentions", sa.String(length=24), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_weibo_poll_state")),
    )


def downgrade() -> None:
    op.drop_table("weibo_poll_state")
    op.drop_index("ix_weibo_public_reply_sent", table_name="weibo_public_reply")
    op.drop_table("weibo_public_reply")
