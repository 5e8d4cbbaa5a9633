"""BTC exchange-rate quotes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 23:30:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fiat_per_btc", sa.String(length=40), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("as_of", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("as_of <= fetched_at", name=op.f("ck_rate_quotes_as_of_before_fetch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_quotes")),
    )
    op.create_index(
        "ix_rate_quotes_currency_as_of", "rate_quotes", ["currency", "as_of"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_rate_quotes_currency_as_of", table_name="rate_quotes")
    op.drop_table("rate_quotes")
