"""The watch list read with the driver's cursor holds exactly the invoices the ORM says to watch."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, or_, select

from shop.orders.models import Order
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin import watcher as watcher_module
from shop.payments.bitcoin.models import BitcoinInvoice, BitcoinPayment
from shop.payments.bitcoin.watcher import WatchSet

COUNT = 3_000


def seed(database, now: datetime) -> None:
    """COUNT invoices around `now`: windows over and open (some by a microsecond), watched
    statuses and exceptions, and money in flight on some whose window is over."""
    orders = [
        dict(
            number=f"W-{i}",
            token=f"w-token-{i}",
            ref=f"w-ref-{i}",
            status="pending_payment",
            currency="EUR",
            subtotal=799,
            shipping=0,
            shipping_tax_rate_bp=0,
            total=799,
            vat_total=52,
            amount_paid=0,
            amount_refunded=0,
            requires_shipping=False,
            shipping_method="",
            country="DE",
            payment_method="bitcoin",
            placed_at=now,
            expires_at=now,
        )
        for i in range(COUNT)
    ]
    with database.engine.begin() as conn:
        conn.execute(insert(Order), orders)
        ids = dict(
            conn.execute(select(Order.number, Order.id).where(Order.number.like("W-%"))).all()
        )
        offsets = [
            timedelta(days=-1),
            timedelta(microseconds=-1),
            timedelta(0),
            timedelta(microseconds=1),
            timedelta(days=1),
        ]
        conn.execute(
            insert(BitcoinInvoice),
            [
                dict(
                    order_id=ids[f"W-{i}"],
                    descriptor_fingerprint="watchlist",
                    derivation_index=i,
                    address=f"synthetic-{i}",
                    script_pubkey=b"\x00\x14" + hashlib.sha256(str(i).encode()).digest()[:20],
                    amount_sats=10_000,
                    order_total=799,
                    currency="EUR",
                    rate="50000",
                    status="processing" if i % 7 == 0 else "new",
                    exception="reverted" if i % 11 == 0 else ("late" if i % 13 == 0 else ""),
                    marked="",
                    mark_reason="",
                    created_at=now,
                    expires_at=now,
                    monitor_until=now + offsets[i % len(offsets)],
                    paid_reported=False,
                    received_sats=0,
                    confirmed_sats=0,
                    credited_sats=0,
                    revision=0,
                    flags="",
                    simulated=False,
                )
                for i in range(COUNT)
            ],
        )
        in_flight = (
            conn.execute(
                select(BitcoinInvoice.id).where(
                    BitcoinInvoice.descriptor_fingerprint == "watchlist",
                    BitcoinInvoice.derivation_index % 17 == 0,
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            insert(BitcoinPayment),
            [
                dict(
                    invoice_id=invoice_id,
                    outpoint=f"{invoice_id:064x}:{n}",
                    txid=f"{invoice_id:064x}",
                    amount_sats=1_000,
                    status="mempool" if n == 0 else "confirmed",
                    spends="",
                    first_seen_at=now,
                )
                for invoice_id in in_flight
                for n in (0, 1)
            ],
        )


def test_full_reload_holds_every_watched_invoice(db, monkeypatch):
    now = datetime.now(UTC).replace(microsecond=500_000)
    seed(db, now)
    # Many small batches: a row lost at a batch's edge would show.
    monkeypatch.setattr(watcher_module, "WATCH_BATCH", 7)
    with db.job_session() as s:
        watched = WatchSet()
        watched.refresh(s, now, timedelta(hours=1))
        expected = {
            bytes(invoice.script_pubkey): invoice.id
            for invoice in s.scalars(
                select(BitcoinInvoice).where(
                    or_(
                        BitcoinInvoice.monitor_until > now,
                        BitcoinInvoice.status == inv.ALWAYS_WATCHED_STATUS.value,
                        BitcoinInvoice.exception == inv.ALWAYS_WATCHED_EXCEPTION.value,
                        BitcoinInvoice.id.in_(
                            select(BitcoinPayment.invoice_id).where(
                                BitcoinPayment.status == "mempool"
                            )
                        ),
                    )
                )
            )
        }
        assert 1_000 < len(expected) < COUNT  # some of every kind, and not all
        assert {bytes(k): v for k, v in watched.scripts.items()} == expected
        assert watched.max_id == max(expected.values())
        # An incremental round after it keeps them all.
        watched.refresh(s, now + timedelta(minutes=1), timedelta(hours=1))
        assert {bytes(k): v for k, v in watched.scripts.items()} == expected
