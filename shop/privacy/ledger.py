"""The bookkeeping ledger: one immutable record per sale and per refund, with nothing personal.

The order's events book a sale when it becomes paid and a refund entry for every refund
(``book_sale`` and the other subscribers below), inside the transition's transaction. Records are never updated (triggers + ORM guard in
shop/privacy/models.py); a correction is a new entry. The purge deletes entries only after the
fiscal retention period (``SHOP_LEDGER_RETENTION_YEARS`` full calendar years after the year of
the entry).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shop.db import rowcount
from shop.money import currency_exponent, vat_included
from shop.orders import events
from shop.orders.models import Order, PaymentRecord
from shop.privacy.models import LedgerDay, LedgerEntry, LedgerLine, LedgerRate


def _payment(session: Session, order: Order, kind: str) -> tuple[str, str]:
    """(payment method, provider reference) for the ledger: the provider's own ids only."""
    records = session.scalars(
        select(PaymentRecord)
        .where(PaymentRecord.order_id == order.id, PaymentRecord.kind == kind)
        .order_by(PaymentRecord.id)
    ).all()
    refs = [r.reference or r.key for r in records]
    return _method(order), ", ".join(dict.fromkeys(refs))[:500]


def _method(order: Order) -> str:
    # What settled the order (a unified request paid over Lightning books as "lightning"); its
    # refunds are booked under the same method as its sale.
    return order.paid_via or order.payment_method


# Amounts are booked per (rate, country whose VAT it is): an OSS return reports each member
# state apart, and two countries may share a rate in one order. The country is "" for an export
# and None for orders from before VAT by destination (the store's own VAT).
Key = tuple[int, str | None]


def _order(key) -> tuple:
    """Highest rate first, then by country: the order rates are listed and ties are broken."""
    if isinstance(key, int):
        return (-key,)
    return (-key[0], key[1] or "")


def _rates(gross_by_rate: dict[Key, int]) -> list[LedgerRate]:
    rates = []
    for (rate, country), gross in sorted(gross_by_rate.items(), key=lambda i: _order(i[0])):
        # A refund's VAT mirrors a sale's exactly: round the magnitude, then restore the sign.
        vat = vat_included(abs(gross), rate) * (1 if gross >= 0 else -1)
        rates.append(
            LedgerRate(tax_rate_bp=rate, tax_country=country, gross=gross, vat=vat, net=gross - vat)
        )
    return rates


def _sale_gross_by_rate(order: Order) -> dict[Key, int]:
    gross: dict[Key, int] = defaultdict(int)
    for line in order.lines:
        gross[line.tax_rate_bp, line.tax_country] += line.line_total
    if order.shipping:
        gross[order.shipping_tax_rate_bp, order.shipping_tax_country] += order.shipping
    return dict(gross)


def _entry(
    order: Order,
    key: str,
    kind: str,
    at: datetime,
    rates: list[LedgerRate],
    method: str,
    reference: str,
) -> LedgerEntry:
    return LedgerEntry(
        key=key,
        kind=kind,
        order_number=order.number,
        order_date=order.placed_at,
        entry_date=at,
        currency=order.currency,
        net=sum(r.net for r in rates),
        vat=sum(r.vat for r in rates),
        gross=sum(r.gross for r in rates),
        payment_method=method,
        payment_reference=reference,
        destination_country=order.country,
        created_at=at,
        rates=rates,
    )


def record_sale(session: Session, order: Order, now: datetime) -> LedgerEntry:
    """Write the sale record of a freshly paid order (once per order: unique natural key)."""
    key = f"sale:{order.number}"
    existing = session.scalar(select(LedgerEntry).where(LedgerEntry.key == key))
    if existing is not None:
        return existing
    method, reference = _payment(session, order, "paid")
    entry = _entry(
        order,
        key,
        "sale",
        order.paid_at or now,
        _rates(_sale_gross_by_rate(order)),
        method,
        reference,
    )
    for position, line in enumerate(order.lines, 1):
        label = (
            f"{line.product_title} — {line.variant_label}"
            if line.variant_label
            else line.product_title
        )
        entry.lines.append(
            LedgerLine(
                position=position,
                description=label[:420],
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                tax_rate_bp=line.tax_rate_bp,
                gross=line.line_total,
            )
        )
    if order.shipping:
        entry.lines.append(
            LedgerLine(
                position=len(order.lines) + 1,
                description=f"Shipping: {order.shipping_method}"[:420],
                sku="",
                quantity=1,
                unit_price=order.shipping,
                tax_rate_bp=order.shipping_tax_rate_bp,
                gross=order.shipping,
            )
        )
    session.add(entry)
    session.flush()
    return entry


def allocate(amount: int, weights: dict) -> dict:
    """Split ``amount`` over keys in proportion to ``weights`` (largest remainder, exact sum;
    a tie goes to the higher rate)."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("cannot allocate over nothing")
    shares = {k: amount * w // total for k, w in weights.items()}
    remainders = sorted(weights, key=lambda k: (-(amount * weights[k] % total), _order(k)))
    for k in remainders[: amount - sum(shares.values())]:
        shares[k] += 1
    return shares


def _booked(session: Session, order: Order) -> dict[Key, tuple[int, int]]:
    """(gross, VAT) per rate and country still booked for the order: its sale less every later
    entry."""
    rows = session.execute(
        select(
            LedgerRate.tax_rate_bp,
            LedgerRate.tax_country,
            func.sum(LedgerRate.gross),
            func.sum(LedgerRate.vat),
        )
        .join(LedgerEntry, LedgerRate.entry_id == LedgerEntry.id)
        .where(LedgerEntry.order_number == order.number)
        .group_by(LedgerRate.tax_rate_bp, LedgerRate.tax_country)
    ).all()
    if not rows:  # no sale recorded (cannot happen for a paid order): what the order says
        return {
            (r.tax_rate_bp, r.tax_country): (r.gross, r.vat)
            for r in _rates(_sale_gross_by_rate(order))
        }
    return {(rate, country): (int(gross), int(vat)) for rate, country, gross, vat in rows}


def _refund_rates(amount: int, booked: dict[Key, tuple[int, int]]) -> list[LedgerRate]:
    """Reverse ``amount`` of what is booked, per rate. The refund that reaches what is left
    takes exactly the remainder, gross and VAT, so a fully refunded order nets to zero per
    rate; an earlier one is split in proportion to what is left and never reverses more VAT
    than is left of a rate."""
    left = {key: gv for key, gv in booked.items() if gv[0] > 0}
    left_gross = sum(g for g, _ in left.values())
    out: dict[Key, list[int]] = {}
    if amount >= left_gross:
        out = {key: [g, v] for key, (g, v) in left.items()}
        extra = amount - left_gross  # money beyond the sale (an overpayment) given back
        if extra and booked:
            for key, share in allocate(
                extra, {k: max(g, 1) for k, (g, _) in booked.items()}
            ).items():
                out.setdefault(key, [0, 0])
                out[key][0] += share
                out[key][1] += vat_included(share, key[0])
    elif amount > 0:
        for key, share in allocate(amount, {k: g for k, (g, _) in left.items()}).items():
            if share:
                out[key] = [share, min(vat_included(share, key[0]), left[key][1])]
    return [
        LedgerRate(tax_rate_bp=rate, tax_country=country, gross=-g, vat=-v, net=-(g - v))
        for (rate, country), (g, v) in sorted(out.items(), key=lambda i: _order(i[0]))
        if g or v
    ]


def record_refund(
    session: Session, order: Order, amount: int, now: datetime, *, reference: str = ""
) -> LedgerEntry:
    """A negative entry reversing ``amount`` of the sale per VAT rate; ``reference`` is this
    refund's own provider reference."""
    count = (
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.order_number == order.number, LedgerEntry.kind == "refund")
        )
        or 0
    )
    rates = _refund_rates(amount, _booked(session, order))
    method = _method(order)
    if not reference:  # older callers: the latest refund the provider reported
        refs = _payment(session, order, "refunded")[1].split(", ")
        reference = refs[-1] if refs else ""
    entry = _entry(
        order, f"refund:{order.number}:{count + 1}", "refund", now, rates, method, reference[:500]
    )
    session.add(entry)
    session.flush()
    return entry


def record_reversal(session: Session, order: Order, amount: int, now: datetime) -> LedgerEntry:
    """Money that went out comes back (a failed refund, a dispute won after the funds were
    withdrawn): a refund entry with positive amounts, mirroring the one it corrects."""
    count = (
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.order_number == order.number, LedgerEntry.kind == "refund")
        )
        or 0
    )
    shares = allocate(amount, _sale_gross_by_rate(order))
    rates = _rates({key: share for key, share in shares.items() if share})
    method, reference = _payment(session, order, "refunded")
    entry = _entry(
        order, f"refund:{order.number}:{count + 1}", "refund", now, rates, method, reference
    )
    session.add(entry)
    session.flush()
    return entry


# ---------------------------------------------------------------- what orders tell the ledger
# Subscribers of the order's events (shop/subscribers.py): they run in the transition's
# transaction, so a sale or refund is booked exactly when the order changes.


def book_sale(session: Session, event: events.OrderPaid) -> None:
    record_sale(session, event.order(session), event.at)


def book_refund(session: Session, event: events.OrderRefunded) -> None:
    order = event.order(session)
    if order.paid_at is not None:  # no sale was booked for money that came after the order ended
        record_refund(session, order, event.amount, event.at, reference=event.reference)


def book_chargeback(session: Session, event: events.ChargebackReceived) -> None:
    order = event.order(session)
    if order.paid_at is not None and event.amount > 0:
        record_refund(session, order, event.amount, event.at)


def book_money_back(
    session: Session, event: events.ChargebackReversed | events.RefundFailed
) -> None:
    order = event.order(session)
    if order.paid_at is not None and event.amount > 0:
        record_reversal(session, order, event.amount, event.at)


# ---------------------------------------------------------------- reading


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in UTC: ``end`` is inclusive."""
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime.fromordinal(end.toordinal() + 1).replace(tzinfo=UTC)
    return lo, hi


@dataclass(frozen=True)
class Totals:
    net: int
    vat: int
    gross: int
    entries: int


def totals(
    session: Session, start: date | None = None, end: date | None = None
) -> dict[str, Totals]:
    """Sums per currency over all entries (or a period); a purge must never change them."""
    stmt = select(
        LedgerEntry.currency,
        func.sum(LedgerEntry.net),
        func.sum(LedgerEntry.vat),
        func.sum(LedgerEntry.gross),
        func.count(),
    ).group_by(LedgerEntry.currency)
    if start is not None and end is not None:
        lo, hi = _day_bounds(start, end)
        stmt = stmt.where(LedgerEntry.entry_date >= lo, LedgerEntry.entry_date < hi)
    return {c: Totals(int(n), int(v), int(g), int(k)) for c, n, v, g, k in session.execute(stmt)}


CSV_COLUMNS = [
    "entry_date",
    "kind",
    "order_number",
    "order_date",
    "destination_country",
    "currency",
    "vat_country",
    "vat_rate_percent",
    "net",
    "vat",
    "gross",
    "payment_method",
    "payment_reference",
    "entry_key",
]


def _amount(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


EXPORT_BATCH = 2000  # rows fetched from the server-side cursor at a time
CHUNK_CHARS = 64 * 1024  # CSV text handed on at a time


def _export_rows(start: date, end: date):
    lo, hi = _day_bounds(start, end)
    # Plain rows, not objects, and only the columns written (never the entry's lines).
    return (
        select(
            LedgerEntry.entry_date,
            LedgerEntry.kind,
            LedgerEntry.order_number,
            LedgerEntry.order_date,
            LedgerEntry.destination_country,
            LedgerEntry.currency,
            LedgerRate.tax_country,
            LedgerRate.tax_rate_bp,
            LedgerRate.net,
            LedgerRate.vat,
            LedgerRate.gross,
            LedgerEntry.payment_method,
            LedgerEntry.payment_reference,
            LedgerEntry.key,
        )
        .join(LedgerRate, LedgerRate.entry_id == LedgerEntry.id)
        .where(LedgerEntry.entry_date >= lo, LedgerEntry.entry_date < hi)
        .order_by(
            LedgerEntry.entry_date,
            LedgerEntry.id,
            LedgerRate.tax_rate_bp.desc(),
            LedgerRate.tax_country,
        )
    )


def iter_csv(connection: Connection, start: date, end: date) -> Iterator[str]:
    """The ledger of a period as CSV text in chunks, read through a server-side cursor: memory
    stays the same for a day or for years. One row per entry and VAT rate, amounts as exact
    decimals. ``connection`` should be one only this export reads from: it stays in use until
    the last chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    # For this statement only (Connection.execution_options would change the connection).
    result = connection.execute(
        _export_rows(start, end),
        execution_options={"stream_results": True, "yield_per": EXPORT_BATCH},
    )
    try:
        for (
            entry_date,
            kind,
            number,
            order_date,
            country,
            currency,
            vat_country,
            rate_bp,
            net,
            vat,
            gross,
            method,
            reference,
            key,
        ) in result:
            writer.writerow(
                [
                    entry_date.isoformat(),
                    kind,
                    number,
                    order_date.date().isoformat(),
                    country,
                    currency,
                    vat_country if vat_country is not None else "",
                    f"{Decimal(rate_bp).scaleb(-2):.2f}",
                    _amount(net, currency),
                    _amount(vat, currency),
                    _amount(gross, currency),
                    method,
                    reference,
                    key,
                ]
            )
            if buffer.tell() >= CHUNK_CHARS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    finally:
        result.close()
    if buffer.tell():
        yield buffer.getvalue()


def stream_csv(engine: Engine, start: date, end: date) -> Iterator[str]:
    """``iter_csv`` on a connection of its own, opened at the first chunk and closed after the
    last (or when the reader goes away): for a web response streamed after its request ended.
    The connection only reads (on SQLite a deferred transaction, which takes no write lock)."""
    with engine.connect() as connection:
        yield from iter_csv(connection, start, end)


def export_csv(session: Session, start: date, end: date, out: io.TextIOBase | None = None) -> str:
    """The whole CSV of a period: written to ``out``, or returned (for small periods)."""
    chunks = iter_csv(session.connection(), start, end)
    if out is None:
        return "".join(chunks)
    for chunk in chunks:
        out.write(chunk)
    return ""


# ---------------------------------------------------------------- retention


def retention_cutoff(now: datetime, years: int) -> datetime:
    """Entries dated before this are past the fiscal period: kept ``years`` full calendar
    years after the end of the year they belong to (an entry of 2026 with 7 years goes on
    1 January 2034)."""
    return datetime(now.year - years, 1, 1, tzinfo=UTC)


def expired_entry_count(session: Session, now: datetime, years: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.entry_date < retention_cutoff(now, years))
        )
        or 0
    )


def delete_expired(session: Session, now: datetime, years: int) -> int:
    cutoff = retention_cutoff(now, years)
    ids = select(LedgerEntry.id).where(LedgerEntry.entry_date < cutoff).scalar_subquery()
    # Children explicitly too: SQLite enforces ON DELETE CASCADE only with foreign_keys on.
    session.execute(delete(LedgerLine).where(LedgerLine.entry_id.in_(ids)))
    session.execute(delete(LedgerRate).where(LedgerRate.entry_id.in_(ids)))
    # The cutoff is a 1 January: the day sums before it go with their entries.
    session.execute(delete(LedgerDay).where(LedgerDay.day < cutoff.date()))
    result = session.execute(delete(LedgerEntry).where(LedgerEntry.entry_date < cutoff))
    return rowcount(result) or 0
