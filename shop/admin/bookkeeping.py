"""Bookkeeping from the privacy module's ledger: VAT summary per rate and destination country.

No Flask. The ledger holds no personal data; the CSV export is the ledger's own
(shop.privacy.ledger.export_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.privacy.models import LedgerDay


@dataclass(frozen=True)
class VatRow:
    currency: str
    country: str
    rate_bp: int
    net: int
    vat: int
    gross: int


def vat_summary(session: Session, start: date, end: date) -> list[VatRow]:
    """Net, VAT and gross per currency, destination country and rate; refunds count negative.

    Read from the per-day sums the database keeps of the ledger (LedgerDay): a year is at most
    365 rows per combination, however many orders it had."""
    rows = session.execute(
        select(LedgerDay.currency, LedgerDay.destination_country, LedgerDay.tax_rate_bp,
               func.sum(LedgerDay.net), func.sum(LedgerDay.vat), func.sum(LedgerDay.gross))
        .where(LedgerDay.day >= start, LedgerDay.day <= end)
        .group_by(LedgerDay.currency, LedgerDay.destination_country, LedgerDay.tax_rate_bp)
        .order_by(LedgerDay.currency, LedgerDay.destination_country, LedgerDay.tax_rate_bp.desc())
    )
    return [VatRow(c, country, int(rate), int(n), int(v), int(g)) for c, country, rate, n, v, g in rows]


def vat_by_rate(rows: list[VatRow]) -> list[VatRow]:
    """The same summed over countries (country "*")."""
    totals: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r.currency, r.rate_bp), [0, 0, 0])
        t[0] += r.net
        t[1] += r.vat
        t[2] += r.gross
    return [VatRow(c, "*", rate, *t) for (c, rate), t in sorted(totals.items(), key=lambda i: (i[0][0], -i[0][1]))]
