"""Upgrading a shop with Bitcoin history: nothing is lost, every invoice keeps its meaning.

Revision 0008 rebuilds the Bitcoin tables on SQLite (batch mode). With foreign keys enforced,
dropping a parent table there deletes its children through ON DELETE CASCADE, so the payments
and history of every invoice would vanish: this fills a 0007 database and upgrades it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    insert,
    select,
)

from shop.db import make_engine
from shop.migrate import upgrade

NOW = datetime.now(UTC).replace(microsecond=0)


def _row(table, **values):
    """`values`, and a plausible value for every other NOT NULL column."""
    for column in table.columns:
        if column.name in values or column.nullable or column.primary_key:
            continue
        kind = column.type
        if isinstance(kind, Boolean):
            values[column.name] = False
        elif isinstance(kind, (Integer, Numeric)):
            values[column.name] = 0
        elif isinstance(kind, DateTime) or "datetime" in type(kind).__name__.lower():
            values[column.name] = NOW
        elif isinstance(kind, LargeBinary):
            values[column.name] = b"\x00"
        elif isinstance(kind, (String, Text)):
            values[column.name] = "x"
        else:
            values[column.name] = NOW
    return values


# old state -> what the upgrade makes of it (expires_at is in the past for all but "new")
CASES = {
    "new": ("new", ""),
    "seen": ("processing", ""),
    "confirmed": ("settled", ""),
    "underpaid": ("expired", "partial"),
    "overpaid": ("settled", "over"),
    "paid_late": ("settled", "late"),
    "invalid": ("invalid", ""),
    "reverted": ("invalid", "reverted"),
}


def test_upgrade_keeps_payments_and_history_and_maps_states(empty_url):
    engine = make_engine(empty_url)
    upgrade(engine, "0007")
    meta = MetaData()
    meta.reflect(engine)
    orders, invoices = meta.tables["orders"], meta.tables["bitcoin_invoices"]
    payments, events = meta.tables["bitcoin_payments"], meta.tables["bitcoin_invoice_events"]
    with engine.begin() as conn:
        for n, state in enumerate(CASES, start=1):
            conn.execute(
                insert(orders).values(
                    _row(
                        orders,
                        id=n,
                        number=f"2026-{n:06d}",
                        token=f"t{n}",
                        ref=f"r{n}",
                        status="pending_payment",
                        currency="EUR",
                        payment_method="bitcoin",
                        country="DE",
                    )
                )
            )
            expires = NOW + timedelta(minutes=30) if state == "new" else NOW - timedelta(hours=1)
            conn.execute(
                insert(invoices).values(
                    _row(
                        invoices,
                        id=n,
                        order_id=n,
                        descriptor_fingerprint="f",
                        derivation_index=n,
                        address=f"bcrt1q{n}",
                        script_pubkey=bytes([0, 20, n] + [0] * 19),
                        amount_sats=10_000,
                        state=state,
                        expires_at=expires,
                        monitor_until=NOW + timedelta(days=7),
                        confirmed_sats=10_000
                        if state in ("confirmed", "overpaid", "paid_late")
                        else 0,
                    )
                )
            )
            conn.execute(
                insert(payments).values(
                    _row(
                        payments,
                        invoice_id=n,
                        outpoint=f"{n:064x}:0",
                        txid=f"{n:064x}",
                        amount_sats=10_000,
                        status="confirmed",
                        replaceable=False,
                    )
                )
            )
            conn.execute(
                insert(events).values(
                    _row(events, invoice_id=n, from_state="", to_state=state, note="before")
                )
            )
    upgrade(engine)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        invoices = meta.tables["bitcoin_invoices"]
        got = {
            row.id: (row.status, row.exception, row.credited_sats)
            for row in conn.execute(select(invoices))
        }
        assert len(conn.execute(select(meta.tables["bitcoin_payments"].c.id)).all()) == 8
        assert len(conn.execute(select(meta.tables["bitcoin_invoice_events"].c.id)).all()) == 8
    engine.dispose()
    for n, state in enumerate(CASES, start=1):
        status, exception = CASES[state]
        assert got[n][:2] == (status, exception), state
        assert got[n][2] == (10_000 if status == "settled" else 0), state


def test_sqlite_foreign_keys_are_back_on_after_migrating(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    with engine.connect() as conn:
        upgrade(engine)
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
