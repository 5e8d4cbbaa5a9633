"""Issue 15: keyset pages reach every product, search ranks and stems, the admin lists page by
keyset, the VAT summary and the ledger export hold at any size. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import sys
import types
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from shop.admin import bookkeeping
from shop.admin import orders as admin_orders
from shop.catalog import search, service
from shop.catalog.models import Product, TaxClass
from shop.money import currency_exponent
from shop.orders.models import Order
from shop.privacy import ledger
from shop.privacy.models import LedgerEntry, LedgerRate
from tests.admin.conftest import merchant, sign_in  # noqa: F401 (a fixture)
from tests.browser import Browser
from tests.conftest import make_test_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from seed import seed  # noqa: E402

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _add_products(database, items) -> list[int]:
    """items: (title, description, position, active); returns their ids."""
    with database.job_session() as s:
        tax = TaxClass(code="std", name="Standard", rate_bp=1900)
        s.add(tax)
        products = [
            Product(
                slug=f"p-{i}",
                title=title,
                description=text,
                position=position,
                active=active,
                tax_class=tax,
            )
            for i, (title, text, position, active) in enumerate(items)
        ]
        s.add_all(products)
        s.flush()
        return [p.id for p in products]


def _titles(page) -> list[str]:
    return [card.title for card in page.items]


# ---------------------------------------------------------------- catalog listing


def test_keyset_pages_reach_every_product_with_ties_both_ways(app, database):
    # Positions repeat (ties) and are out of id order; two products are archived.
    items = [(f"Item {i}", "", [3, 0, 0, 1, 3, 0][i % 6], i % 7 != 3) for i in range(23)]
    ids = _add_products(database, items)
    expected = [
        f"Item {i}"
        for _, _, i in sorted((items[i][2], ids[i], i) for i in range(23) if items[i][3])
    ]
    with database.job_session() as s:
        page, seen, pages = service.list_products(s, per_page=4), [], []
        while True:
            seen += _titles(page)
            pages.append(page)
            if not page.has_next:
                break
            page = service.list_products(s, per_page=4, after=page.next_cursor)
        assert seen == expected
        assert not pages[0].has_prev and pages[-1].has_prev
        # And back from the last page, through the same pages.
        back = [_titles(pages[-1])]
        page = pages[-1]
        while page.has_prev:
            page = service.list_products(s, per_page=4, before=page.prev_cursor)
            back.append(_titles(page))
        assert back[::-1] == [_titles(p) for p in pages]


def test_every_page_through_the_web_and_old_links(db_url, tmp_path):
    app = make_test_app(db_url, tmp_path / "instance", products_per_page=5)
    ids = _add_products(app.extensions["shop.db"], [(f"Thing {i}", "", 0, True) for i in range(12)])
    client, b, seen = app.test_client(), None, []
    b = Browser(client)
    b.get("/")
    while True:
        seen += [h.get_text() for h in b.page.soup.select(".card h2")]
        if "Next" not in b.page.text:
            break
        b.follow("Next")
    assert seen == [f"Thing {i}" for i in range(len(ids))]
    old = client.get("/?page=40")
    assert old.status_code == 301 and old.headers["Location"] == "/"
    assert client.get("/?page=-1").status_code == 404
    app.extensions["shop.db"].dispose()


@pytest.mark.parametrize(
    "query",
    [
        "after=abc",
        "after=1~",
        "after=~5",
        "after=1~2~3",
        "after=99999999999~1",
        "after=1.5~2",
        "before=x",
        "after=1~2&before=1~2",
        "q=roast&after=nan~1",
        "q=roast&after=inf~1",
        "q=roast&after=1e999~1",
        "after=%00",
        "after=" + "9" * 500,
    ],
)
def test_tampered_cursor_is_a_4xx(app, database, query):
    _add_products(database, [("Dark roast", "", 0, True)])
    response = app.test_client().get(f"/?{query}")
    assert 400 <= response.status_code < 500, (query, response.status_code)


def test_cursor_past_the_end_is_not_found(app, database):
    _add_products(database, [("Only one", "", 0, True)])
    assert app.test_client().get("/?after=5~999999").status_code == 404


# ---------------------------------------------------------------- search


def test_search_ranks_title_above_description_and_stems(app, database):
    _add_products(
        database,
        [
            ("Travel mug", "Keeps a dark roast warm for hours.", 0, True),
            ("House roast", "Beans from a small farm.", 1, True),
            ("Tea towel", "Linen.", 2, True),
        ],
    )
    with database.job_session() as s:
        assert _titles(service.list_products(s, query="roast")) == ["House roast", "Travel mug"]
        # "roasts" and "roasting" are the same word; a beginning of a word finds it too.
        assert _titles(service.list_products(s, query="roasts")) == ["House roast", "Travel mug"]
        assert _titles(service.list_products(s, query="roasting")) == ["House roast", "Travel mug"]
        assert _titles(service.list_products(s, query="lin")) == ["Tea towel"]
        assert _titles(service.list_products(s, query="house ROAST")) == ["House roast"]
        assert _titles(service.list_products(s, query="roast nothing-like-it")) == []
        # Query syntax of either engine is only text here.
        for odd in ('"', "roast*", "a & | ! :*", "NEAR(x y)", "'", "-roast", "%", "\\"):
            service.list_products(s, query=odd)


def test_search_pages_by_rank(app, database):
    _add_products(
        database,
        [(f"Roast {i}", "roast" * (i % 3), i, True) for i in range(9)]
        + [("Mug", "for a roast", 9, True)],
    )
    with database.job_session() as s:
        page, seen = service.list_products(s, query="roast", per_page=4), []
        while True:
            seen += _titles(page)
            if not page.has_next:
                break
            page = service.list_products(s, query="roast", per_page=4, after=page.next_cursor)
        assert sorted(seen) == sorted([f"Roast {i}" for i in range(9)] + ["Mug"])
        assert len(seen) == len(set(seen)) and seen[-1] == "Mug"


def test_search_ranks_a_bounded_set_of_candidates_title_matches_first(app, database, monkeypatch):
    # 30 products say "walnut" in the description; the 3 with it in the title come last, so
    # the first candidates the index yields for "anywhere" are description matches.
    monkeypatch.setattr(search, "CANDIDATES", 5)
    _add_products(
        database,
        [(f"Board {i}", f"Oiled walnut, {i} coats.", i, True) for i in range(30)]
        + [(f"Walnut bowl {i}", "Turned by hand.", 30 + i, True) for i in range(3)],
    )
    with database.job_session() as s:
        page, seen = service.list_products(s, query="walnut", per_page=4), []
        while True:
            seen += _titles(page)
            if not page.has_next:
                break
            page = service.list_products(s, query="walnut", per_page=4, after=page.next_cursor)
        # Every title match, found through the titles' own candidates, ranks first; then at
        # most CANDIDATES others: not every match is read and ranked.
        assert sorted(seen[:3]) == [f"Walnut bowl {i}" for i in range(3)]
        assert len(seen) == 3 + 5 and len(set(seen)) == len(seen)
        assert all(title.startswith("Board ") for title in seen[3:])
        # The last word typed is a prefix; the words before it are whole words.
        assert sorted(_titles(service.list_products(s, query="walnut bow"))) == [
            f"Walnut bowl {i}" for i in range(3)
        ]
        assert _titles(service.list_products(s, query="wal bowl")) == []
        # Only stop words (PostgreSQL drops them): nothing, not an error.
        assert _titles(service.list_products(s, query="the")) == []


def test_german_store_finds_inflected_words(db_url, tmp_path):
    app = make_test_app(db_url, tmp_path / "instance", locale="de")
    database = app.extensions["shop.db"]
    _add_products(
        database,
        [
            ("Kaffee aus Äthiopien", "Röstung: hell.", 0, True),
            ("Teekanne", "Für Tees und Kräuter.", 1, True),
        ],
    )
    with database.job_session() as s:
        assert _titles(service.list_products(s, query="Kaffees")) == ["Kaffee aus Äthiopien"]
        assert _titles(service.list_products(s, query="kaff")) == ["Kaffee aus Äthiopien"]
        assert _titles(service.list_products(s, query="Tee")) == ["Teekanne"]
        if not database.is_postgres or search.unaccent(s.connection()):
            # Typed without the umlaut (FTS5 folds diacritics; PostgreSQL with unaccent).
            assert _titles(service.list_products(s, query="athiopien")) == ["Kaffee aus Äthiopien"]
            assert _titles(service.list_products(s, query="rostung")) == ["Kaffee aus Äthiopien"]
    database.dispose()


def test_search_index_follows_updates_and_deletes(app, database):
    [mug, bag] = _add_products(database, [("Enamel mug", "", 0, True), ("Canvas bag", "", 1, True)])
    with database.job_session() as s:
        s.get(Product, mug).title = "Enamel cup"
        s.get(Product, bag).description = "Holds a mug or two."
    with database.job_session() as s:
        assert _titles(service.list_products(s, query="mug")) == ["Canvas bag"]
        assert _titles(service.list_products(s, query="cup")) == ["Enamel cup"]
        s.delete(s.get(Product, bag))
    with database.job_session() as s:
        assert _titles(service.list_products(s, query="mug")) == []
        s.get(Product, mug).active = False
    with database.job_session() as s:
        assert _titles(service.list_products(s, query="cup")) == []


def test_seeded_products_are_searchable(db_url):
    seed(db_url, products=40, orders=0, quiet=True)
    from shop.db import Database

    database = Database(db_url, search_config="english")
    with database.job_session() as s:
        found = service.list_products(s, query="roast", per_page=100).items
        expected = s.scalar(
            select(func.count())
            .select_from(Product)
            .where(Product.active.is_(True), Product.title.contains("roast"))
        )
        assert expected and len([c for c in found if "roast" in c.title]) == expected
    database.dispose()


# ---------------------------------------------------------------- admin lists, VAT, export


def _old_vat_summary(s, start: date, end: date, home: str = ""):
    """What the summary computed before day sums existed: every rate row of the period."""
    lo, hi = ledger._day_bounds(start, end)
    rows = s.execute(
        select(
            LedgerEntry.currency,
            LedgerRate.tax_country,
            LedgerEntry.destination_country,
            LedgerRate.tax_rate_bp,
            func.sum(LedgerRate.net),
            func.sum(LedgerRate.vat),
            func.sum(LedgerRate.gross),
        )
        .join(LedgerRate, LedgerRate.entry_id == LedgerEntry.id)
        .where(LedgerEntry.entry_date >= lo, LedgerEntry.entry_date < hi)
        .group_by(
            LedgerEntry.currency,
            LedgerRate.tax_country,
            LedgerEntry.destination_country,
            LedgerRate.tax_rate_bp,
        )
    )
    out = [
        bookkeeping.VatRow(c, home if k is None else k, int(r), int(n), int(v), int(g), d)
        for c, k, d, r, n, v, g in rows
    ]
    return sorted(
        out, key=lambda r: (r.currency, r.country == "", r.country, -r.rate_bp, r.destination)
    )


def _old_export(s, start: date, end: date) -> str:
    """The export as it was written before streaming: ORM entries, their rates, in memory."""
    lo, hi = ledger._day_bounds(start, end)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ledger.CSV_COLUMNS)

    def amount(minor, currency):
        e = currency_exponent(currency)
        return f"{Decimal(minor).scaleb(-e):.{e}f}"

    for entry in s.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.entry_date >= lo, LedgerEntry.entry_date < hi)
        .order_by(LedgerEntry.entry_date, LedgerEntry.id)
    ):
        for rate in entry.rates:
            writer.writerow(
                [
                    entry.entry_date.isoformat(),
                    entry.kind,
                    entry.order_number,
                    entry.order_date.date().isoformat(),
                    entry.destination_country,
                    entry.currency,
                    rate.tax_country if rate.tax_country is not None else "",
                    f"{Decimal(rate.tax_rate_bp).scaleb(-2):.2f}",
                    amount(rate.net, entry.currency),
                    amount(rate.vat, entry.currency),
                    amount(rate.gross, entry.currency),
                    entry.payment_method,
                    entry.payment_reference,
                    entry.key,
                ]
            )
    return out.getvalue()


@pytest.fixture
def books(app, database):
    """A small shop with 300 orders over 60 days (sales in several countries and rates)."""
    seed(database.url, products=30, orders=300, days=60, now=NOW, quiet=True)
    return app


def test_vat_summary_from_day_sums_equals_every_rate_row(books, database):
    with database.job_session() as s:
        for start, end in (
            (date(2026, 5, 1), date(2026, 6, 30)),
            (date(2026, 6, 3), date(2026, 6, 3)),
            (date(2026, 1, 1), date(2026, 12, 31)),
            (date(2025, 1, 1), date(2025, 2, 1)),
        ):
            assert bookkeeping.vat_summary(s, start, end, "DE") == _old_vat_summary(
                s, start, end, "DE"
            )
        assert bookkeeping.vat_summary(s, date(2026, 5, 1), date(2026, 6, 30))


def test_ledger_export_streams_the_old_csv(books, database, merchant):  # noqa: F811
    start, end = date(2026, 5, 1), date(2026, 6, 30)
    with database.job_session() as s:
        expected = _old_export(s, start, end)
    assert expected.count("\n") > 200
    url = f"/admin/bookkeeping/ledger.csv?start={start}&end={end}"
    response = sign_in(books.test_client()).client.get(url)
    assert response.status_code == 200 and "Content-Length" not in response.headers
    assert response.get_data(as_text=True) == expected
    with books.test_request_context(url):
        from shop.admin.bookkeeping_views import bookkeeping_csv

        assert isinstance(bookkeeping_csv().response, types.GeneratorType)
    # Small chunks from the generator itself: the body is never built whole.
    chunks = list(ledger.stream_csv(database.engine, start, end))
    assert "".join(chunks) == expected and chunks[0] == ",".join(ledger.CSV_COLUMNS) + "\n"
    with database.job_session() as s:
        assert ledger.export_csv(s, start, end) == expected
        # The session's connection is left as it was: it can still write.
        s.execute(update(Order).where(Order.id == -1).values(attention=None))


def test_admin_lists_page_by_keyset(books, database, merchant):  # noqa: F811
    with database.job_session() as s:
        all_ids = list(s.scalars(select(Order.id).order_by(Order.id.desc())))
        flagged = list(s.scalars(select(Order.id).order_by(Order.id.desc()).limit(60)))
        s.execute(update(Order).values(attention=None))
        for order in s.scalars(select(Order).where(Order.id.in_(flagged))):
            order.attention = "Check this payment."
    with database.job_session() as s:
        seen, page = [], admin_orders.list_orders(s)
        while True:
            seen += [o.id for o in page.items]
            if page.older is None:
                break
            page = admin_orders.list_orders(s, before_id=page.older)
        assert seen == all_ids
        newer = admin_orders.list_orders(s, after_id=page.newer)
        assert [o.id for o in newer.items] == all_ids[-len(page.items) - 50 : -len(page.items)]
        tasks = admin_orders.tasks(s)
        assert [o.id for o in tasks.items] == flagged[:50] and tasks.older is not None
        assert [o.id for o in admin_orders.tasks(s, before_id=tasks.older).items] == flagged[50:]
    b = sign_in(books.test_client())
    b.get("/admin/orders")
    assert len(b.page.soup.select("table.lines tbody tr")) == 50
    b.follow("Older")
    assert "Newer" in b.page.text
    b.get("/admin/tasks")
    b.follow("Older")
    assert len(b.page.soup.select("ul.tasks li")) == 10
    for bad in ("/admin/orders?before=abc", "/admin/orders?after=-3", "/admin/tasks?before=1e9"):
        b.get(bad, expect=400)
    # The payment filter offers the shop's methods, without reading every order.
    b.get("/admin/orders?method=card")
    assert all(
        row.select("td")[2].get_text() == "card"
        for row in b.page.soup.select("table.lines tbody tr")
    )


def test_order_number_lookups(books, database):
    with database.job_session() as s:
        year = s.scalar(select(func.max(Order.number)))[:4]
        for typed in ("42", "000042", "0042", f"{year}-42", f"{year}-000042"):
            assert [o.number for o in admin_orders.list_orders(s, number=typed).items] == [
                f"{year}-000042"
            ], typed
        assert f"{year}-000123" in [
            o.number for o in admin_orders.list_orders(s, number="-00012").items
        ]
        assert admin_orders.list_orders(s, number="99999").items == []


def test_search_index_is_rebuilt_for_a_new_store_language(db_url, tmp_path):
    english = make_test_app(db_url, tmp_path / "en").extensions["shop.db"]
    _add_products(english, [("Kaffee aus Äthiopien", "", 0, True)])
    german = make_test_app(db_url, tmp_path / "de", locale="de_DE").extensions["shop.db"]
    with german.engine.begin() as conn:
        rebuilt = search.ensure_language(conn, german.search_config)
    # PostgreSQL stems in the index: it must be rebuilt; SQLite's FTS5 does not depend on it.
    assert rebuilt == german.is_postgres
    with german.engine.begin() as conn:
        assert not search.ensure_language(conn, german.search_config)
    with german.job_session() as s:
        assert _titles(service.list_products(s, query="Kaffees")) == ["Kaffee aus Äthiopien"]
    english.dispose()
    german.dispose()


def test_day_sums_go_with_the_entries_past_retention(app, database):
    seed(
        database.url,
        products=10,
        orders=50,
        days=30,
        now=datetime(2018, 6, 30, tzinfo=UTC),
        quiet=True,
    )
    seed(database.url, products=0, orders=50, days=30, now=NOW, quiet=True, seed_value=2)
    with database.job_session() as s:
        assert bookkeeping.vat_summary(s, date(2018, 1, 1), date(2018, 12, 31))
        ledger.delete_expired(s, NOW, 7)  # kept 7 full years after 2018: gone on 1 Jan 2026
    with database.job_session() as s:
        assert bookkeeping.vat_summary(s, date(2018, 1, 1), date(2018, 12, 31)) == []
        recent = (date(2026, 1, 1), date(2026, 12, 31))
        assert bookkeeping.vat_summary(s, *recent) == _old_vat_summary(s, *recent) != []
