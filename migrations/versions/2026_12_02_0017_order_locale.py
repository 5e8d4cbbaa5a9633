"""orders.locale: the language the customer shopped in

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 00:16:00

Emails are rendered later by the worker, outside any request: the order keeps the language of
its checkout. Nullable, no default: older orders fall back to the store's SHOP_LOCALE.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("locale", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("locale")
