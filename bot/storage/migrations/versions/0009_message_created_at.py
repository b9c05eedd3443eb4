"""retention: an index on message.created_at, so pruning old messages reads only what it deletes

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_message_created_at", "message", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_message_created_at", table_name="message")
