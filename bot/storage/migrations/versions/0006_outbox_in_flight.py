"""outbox in flight: message.resent_in_doubt, and the outbox_sender presence table

Revision ID: 0006
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A column with a constant default: SQLite adds it in place (no table copy), PostgreSQL without a rewrite.
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resent_in_doubt", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "outbox_sender",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("instance", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "account", "instance", name=op.f("pk_outbox_sender")),
    )


def downgrade() -> None:
    op.drop_table("outbox_sender")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("resent_in_doubt")
