"""promotion.poster: an image sent with the offer's reply (a URL or an absolute file path)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("promotion") as batch:
        batch.add_column(sa.Column("poster", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotion") as batch:
        batch.drop_column("poster")
