"""product_search.title: the title alone, with its own GIN index (PostgreSQL)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 00:18:00

A search ranks a bounded number of candidates (shop.catalog.search): title matches first,
found through this index, then matches anywhere. Without it the title candidates would come
from the whole document's index, whose hits include every description match and would all be
read to find the few titles. Filled in the configuration and accent folding each row's
``language`` records. SQLite needs nothing: FTS5 filters by column in its own index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE product_search ADD COLUMN title tsvector NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE product_search ALTER COLUMN title DROP DEFAULT")
    tags = bind.execute(sa.text("SELECT DISTINCT language FROM product_search")).scalars()
    for tag in tags.all():
        config, _, folded = tag.partition("+")
        title = "unaccent(p.title)" if folded else "p.title"
        bind.execute(
            sa.text(
                "UPDATE product_search s "
                f"SET title = to_tsvector(CAST(CAST(:config AS text) AS regconfig), {title}) "
                "FROM products p WHERE p.id = s.product_id AND s.language = :tag"
            ),
            {"config": config, "tag": tag},
        )
    op.execute("CREATE INDEX ix_product_search_title ON product_search USING gin (title)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_product_search_title")
    op.execute("ALTER TABLE product_search DROP COLUMN title")
