"""The bookkeeping ledger: written when paid and refunded, immutable, exported, expired."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from shop.orders import service
from shop.privacy import ledger
from shop.privacy.models import LedgerEntry, LedgerImmutable, LedgerLine, LedgerRate
from tests.privacy.helpers import pay, place, refund

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _entries(s):
    return s.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()


def test_sale_is_recorded_once_with_rates_lines_and_no_personal_data(demo_catalog, database):
    with database.job_session() as s:
        # €39 print and €4.90 shipping, both 19 %
        order = place(s, "PRINT-HARB-A3", now=T0)
        assert _entries(s) == []  # nothing until paid
        pay(s, order, now=T0, reference="pi_123")
        pay(s, order, now=T0, key="second-event", reference="pi_123")  # a late extra event
        [entry] = _entries(s)
        assert (entry.kind, entry.order_number, entry.currency) == ("sale", order.number, "EUR")
        assert (entry.entry_date, entry.order_date) == (T0, T0)
        assert entry.gross == order.total == 4390
        assert entry.vat == order.vat_total == 701 and entry.net == 4390 - 701
        assert [(r.tax_rate_bp, r.gross, r.vat, r.net) for r in entry.rates] == [
            (1900, 4390, 701, 3689)
        ]
        assert [(l.description, l.quantity, l.gross) for l in entry.lines] == [
            ("Harbour at Dawn — art print — A3", 1, 3900),
            ("Shipping: Standard parcel", 1, 490),
        ]
        assert (entry.payment_method, entry.payment_reference, entry.destination_country) == (
            "demo",
            "pi_123",
            "DE",
        )
        row = " ".join(str(v) for v in s.execute(text("SELECT * FROM ledger_entries")).one())
        for personal in ("Ada", "Lovelace", "example.org", "Harbour Road", "Berlin", order.token):
            assert personal not in row


def test_mixed_rates_and_refunds_are_negative_entries(demo_catalog, database):
    with database.job_session() as s:
        order = place(s, "COF-ESP-1000", 2, now=T0)  # €64, free shipping, 7 %
        pay(s, order, now=T0)
        refund(s, order, 1000, now=datetime(2026, 3, 5, tzinfo=UTC), key="r1")
        refund(s, order, order.total - 1000, now=datetime(2026, 3, 6, tzinfo=UTC), key="r2")
        sale, r1, r2 = _entries(s)
        assert order.status == "refunded"
        assert (r1.kind, r1.key, r1.gross, r1.vat) == (
            "refund",
            f"refund:{order.number}:1",
            -1000,
            -65,
        )
        assert r1.net == -935 and r1.lines == [] and r1.payment_reference == "r1"
        assert r2.key.endswith(":2") and sale.gross + r1.gross + r2.gross == 0
        assert ledger.totals(s)["EUR"].gross == 0


def test_refund_is_split_over_rates_exactly():
    assert ledger.allocate(1000, {1900: 3000, 700: 1000}) == {1900: 750, 700: 250}
    shares = ledger.allocate(1001, {1900: 1, 700: 1, 0: 1})
    assert sum(shares.values()) == 1001 and max(shares.values()) - min(shares.values()) == 1
    with pytest.raises(ValueError):
        ledger.allocate(5, {})


def test_the_ledger_refuses_updates_in_the_orm_and_in_the_database(demo_catalog, database):
    with database.job_session() as s:
        pay(s, place(s, "PRINT-HARB-A3", now=T0), now=T0)
    with database.job_session() as s:
        entry = _entries(s)[0]
        entry.gross = 1
        with pytest.raises(LedgerImmutable):
            s.flush()
        s.rollback()
    for table, column in (
        ("ledger_entries", "gross"),
        ("ledger_lines", "quantity"),
        ("ledger_rates", "vat"),
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            with database.engine.begin() as conn:  # raw SQL, bypassing every ORM guard
                conn.execute(text(f"UPDATE {table} SET {column} = {column} + 1"))
    with database.job_session() as s:
        entry = _entries(s)[0]
        assert (entry.gross, entry.lines[0].quantity, entry.rates[0].vat) == (4390, 1, 701)


def test_csv_export_for_a_period(demo_catalog, database):
    with database.job_session() as s:
        march = place(s, "COF-ESP-1000", 2, now=T0)
        pay(s, march, now=T0)
        april = place(s, "PRINT-HARB-A3", now=datetime(2026, 4, 1, tzinfo=UTC))
        pay(s, april, now=datetime(2026, 4, 1, tzinfo=UTC))
        refund(s, march, 1000, now=datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
        out = ledger.export_csv(s, date(2026, 3, 1), date(2026, 3, 31))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [
        (r["kind"], r["order_number"], r["vat_rate_percent"], r["gross"], r["vat"], r["net"])
        for r in rows
    ] == [
        ("sale", march.number, "7.00", "64.00", "4.19", "59.81"),
        ("refund", march.number, "7.00", "-10.00", "-0.65", "-9.35"),
    ]
    assert rows[0]["destination_country"] == "DE" and rows[0]["payment_method"] == "demo"


def test_cli_ledger_export(demo_catalog, database, tmp_path):
    with database.job_session() as s:
        pay(s, place(s, "PRINT-HARB-A3", now=T0), now=T0)
    from shop.privacy.cli import privacy

    runner = demo_catalog.test_cli_runner()
    out = tmp_path / "ledger.csv"
    result = runner.invoke(
        privacy, ["ledger-export", "--from", "2026-01-01", "--to", "2026-12-31", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].split(",")[1:3] == ["sale", "2026-000001"]
    bad = runner.invoke(privacy, ["ledger-export", "--from", "2026-13-01", "--to", "2026-12-31"])
    assert bad.exit_code == 2 and "not a date" in bad.output
    backwards = runner.invoke(
        privacy, ["ledger-export", "--from", "2026-12-01", "--to", "2026-01-01"]
    )
    assert backwards.exit_code == 2 and "must not be before" in backwards.output


def test_entries_are_deleted_only_after_the_fiscal_period(demo_catalog, database):
    with database.job_session() as s:
        order = place(s, "PRINT-HARB-A3", now=T0)
        pay(s, order, now=T0)
        service.fulfil(s, order, now=T0)
    with database.job_session() as s:
        # Kept 7 full years after the end of 2026 ...
        assert ledger.delete_expired(s, datetime(2033, 12, 31, 23, tzinfo=UTC), 7) == 0
        assert ledger.expired_entry_count(s, datetime(2034, 1, 1, tzinfo=UTC), 7) == 1
        assert ledger.expired_entry_count(s, datetime(2034, 1, 1, tzinfo=UTC), 10) == 0
        # ... then gone with its lines and rates.
        assert ledger.delete_expired(s, datetime(2034, 1, 1, tzinfo=UTC), 7) == 1
        assert s.scalar(select(LedgerLine.id)) is None and s.scalar(select(LedgerRate.id)) is None
