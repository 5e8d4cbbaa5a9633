"""Full-text search over product titles and descriptions (no Flask).

The index is the table ``product_search`` (migration 0013), a derived copy outside the models:
on PostgreSQL weighted tsvectors (title A, description B) under a GIN index, stemmed in the
text search configuration of the store's language (``SHOP_LOCALE``: de -> german, ...,
'simple' for a language PostgreSQL does not stem); on SQLite an FTS5 table with the porter
stemmer and diacritics folded. Every ORM flush that adds or changes a product rewrites its
rows (``sync``, called from shop.catalog.models); bulk loads and a change of language call
``reindex``. The last word of a query also matches as a prefix, so a partial word ("kaff")
finds.

A search ranks a bounded set of candidates, not every match (``ranked``): at most
``CANDIDATES`` products whose title has every word, found through an index of titles alone,
and at most ``CANDIDATES`` matching anywhere, each set as the index yields it; title matches
rank above the others, then by relevance (``ts_rank`` / ``bm25``). Ranking every match cost
about 5-10 µs a match, so a broad query over 100k products took 40-180 ms; bounded, what
still grows with the matches is the index's own work (about 0.1 µs a match). The price: a
broad query lists at most 2 × ``CANDIDATES`` products, not necessarily the most relevant of
all its matches; another word narrows it. The title index is ``product_search.title``
(migration 0019) on PostgreSQL, FTS5's column filter on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Connection

# PostgreSQL's built-in snowball configurations, by language code.
CONFIGS = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
MAX_WORDS = 8
# Per tier (title, anywhere): 20 pages of 12 each.
CANDIDATES = 240
_WORD = re.compile(r"\w+", re.UNICODE)


def config_for(locale: str) -> str:
    """The PostgreSQL text search configuration for a locale such as de_DE."""
    return CONFIGS.get(re.split(r"[_-]", locale or "")[0].lower(), "simple")


def words(query: str) -> list[str]:
    """Letters and digits only: nothing of the query reaches a query parser as syntax."""
    return _WORD.findall(query.lower())[:MAX_WORDS]


def match_expression(query: str, postgres: bool) -> str | None:
    """Every word, the last also as a prefix (the one being typed), in the syntax of
    to_tsquery or FTS5 MATCH. Only the last: each prefix term made the index collect every
    match of every word beginning so (a GIN bitmap, an FTS5 doclist in memory), 20-30 ms for
    four common words at 100k products."""
    found = [w.replace("_", "") for w in words(query)]
    found = [w for w in found if w]
    if not found:
        return None
    if postgres:
        return " & ".join([*found[:-1], f"{found[-1]}:*"])
    return " ".join([*(f'"{w}"' for w in found[:-1]), f'"{found[-1]}"*'])


def ranked(connection: Connection, match: str, config: str) -> TextClause | None:
    """(product_id, rank) of the candidates for ``match``, higher ranks first: title matches
    rank in [1, 2), others in [0, 1). None: nothing can match (only stop words)."""
    if connection.dialect.name == "postgresql":
        # The query as a constant: with unaccent() (stable, not immutable) in the statement the
        # planner cannot fold it, so it re-evaluated it per row and, unable to see how many
        # rows match, always built the GIN bitmap of every match; given the tsquery it scans
        # the table until it has the candidates when a query matches most products.
        tsquery = connection.execute(
            text(f"SELECT CAST({tsquery_sql(connection)} AS text)"),
            {"config": config, "match": match},
        ).scalar_one()
        if not tsquery:
            return None
        # Written into the statement, not sent as parameters: psycopg prepares a statement run
        # often, and PostgreSQL then plans it once for any tsquery (a bitmap of every match
        # even for a word in most products: 5 ms instead of 0.3 ms at 100k products).
        return text(_PG_RANKED).bindparams(
            bindparam("tsquery", tsquery, literal_execute=True),
            bindparam("limit", CANDIDATES, literal_execute=True),
        )
    title_match = f"{{title}} : ({match})"
    return text(_SQLITE_RANKED).bindparams(match=match, title=title_match, limit=CANDIDATES)


# ts_rank's normalization 32 maps a rank into [0, 1), so the tier decides first.
_PG_CANDIDATES = """(
    SELECT s.product_id,
           CAST((s.title @@ CAST(:tsquery AS tsquery))::int AS double precision)
           + ts_rank(s.document, CAST(:tsquery AS tsquery), 32) AS rank
    FROM product_search s WHERE s.{column} @@ CAST(:tsquery AS tsquery) LIMIT :limit)"""
_PG_RANKED = (
    _PG_CANDIDATES.format(column="title") + " UNION " + _PG_CANDIDATES.format(column="document")
)
# bm25 is lower for better matches; a title word weighs ten description words. FTS5 yields
# rows by rowid: the same candidates on every page. A title match among the second set
# keeps its first-set rank (max).
_SQLITE_CANDIDATES = """
    SELECT product_id, {tier} + score / (1 + score) AS rank FROM (
        SELECT rowid AS product_id, -bm25(product_search, 10.0, 1.0) AS score
        FROM product_search WHERE product_search MATCH :{match} LIMIT :limit)"""
_SQLITE_RANKED = (
    "SELECT product_id, max(rank) AS rank FROM ("
    + _SQLITE_CANDIDATES.format(tier=1, match="title")
    + " UNION ALL "
    + _SQLITE_CANDIDATES.format(tier=0, match="match")
    + ") GROUP BY product_id"
)


_CONFIG = "CAST(CAST(:config AS text) AS regconfig)"


def unaccent(connection: Connection) -> bool:
    """Whether PostgreSQL's unaccent extension is installed (migration 0013 tries to): then
    index and queries fold accents alike, so "rostung" finds "Röstung". Asked once per
    database connection."""
    if connection.dialect.name != "postgresql":
        return False
    info = connection.connection.info
    if "shop.unaccent" not in info:
        info["shop.unaccent"] = (
            connection.execute(
                text("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'")
            ).first()
            is not None
        )
    return info["shop.unaccent"]


def _fold(connection: Connection, sql: str) -> str:
    return f"unaccent({sql})" if unaccent(connection) else sql


def index_tag(connection: Connection, config: str) -> str:
    """What the index rows record of how they were made (a change means: rebuild)."""
    return f"{config}+unaccent" if unaccent(connection) else config


def tsquery_sql(connection: Connection) -> str:
    """to_tsquery of the bound :match in the bound :config, folded like the documents."""
    return f"to_tsquery({_CONFIG}, {_fold(connection, 'CAST(:match AS text)')})"


def _pg_insert(connection: Connection, where: str) -> str:
    document = (
        f"setweight(to_tsvector({_CONFIG}, {_fold(connection, 'title')}), 'A') || "
        f"setweight(to_tsvector({_CONFIG}, {_fold(connection, 'description')}), 'B')"
    )
    title = f"to_tsvector({_CONFIG}, {_fold(connection, 'title')})"
    return (
        f"INSERT INTO product_search (product_id, language, document, title) "
        f"SELECT id, CAST(:tag AS text), {document}, {title} FROM products WHERE {where}"
    )


def sync(connection: Connection, product_ids: Iterable[int], config: str) -> None:
    """Rewrite the index rows of these products (gone ones are removed)."""
    ids = sorted(set(product_ids))
    if not ids:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("DELETE FROM product_search WHERE product_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        )
        connection.execute(
            text(_pg_insert(connection, "id IN :ids")).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids, "config": config, "tag": index_tag(connection, config)},
        )
    else:
        connection.execute(
            text("DELETE FROM product_search WHERE rowid IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        )
        connection.execute(
            text(
                "INSERT INTO product_search (rowid, title, description) "
                "SELECT id, title, description FROM products WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )


def reindex(connection: Connection, config: str = "simple", first_id: int = 0) -> None:
    """Rebuild the index of every product from ``first_id`` on (all of them by default)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("DELETE FROM product_search WHERE product_id >= :first"), {"first": first_id}
        )
        connection.execute(
            text(_pg_insert(connection, "id >= :first")),
            {"config": config, "first": first_id, "tag": index_tag(connection, config)},
        )
    else:
        connection.execute(
            text("DELETE FROM product_search WHERE rowid >= :first"), {"first": first_id}
        )
        connection.execute(
            text(
                "INSERT INTO product_search (rowid, title, description) "
                "SELECT id, title, description FROM products WHERE id >= :first"
            ),
            {"first": first_id},
        )


def ensure_language(connection: Connection, config: str) -> bool:
    """Rebuild the PostgreSQL index if it was built another way (language, accent folding);
    True if it was."""
    if connection.dialect.name != "postgresql":
        return False
    stale = connection.execute(
        text("SELECT 1 FROM product_search WHERE language <> :tag LIMIT 1"),
        {"tag": index_tag(connection, config)},
    ).first()
    if stale is None:
        return False
    reindex(connection, config)
    return True
