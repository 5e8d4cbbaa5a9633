"""Bookkeeping from the privacy module's ledger: VAT summary per rate and country.

An OSS return lists, per member state of consumption, the VAT charged there at each rate; the
domestic return the store's own VAT and the tax-free exports. Each ledger rate row says whose
VAT it is (``tax_country``), so both come from the same rows.

No Flask. The ledger holds no personal data; the CSV export is the ledger's own
(shop.privacy.ledger.export_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.privacy.models import BEFORE_DESTINATION, LedgerDay


@dataclass(frozen=True)
class VatRow:
    currency: str
    # Whose VAT this is ("" an export without EU VAT; "*" summed over countries).
    country: str
    rate_bp: int
    net: int
    vat: int
    gross: int
    # Where the goods went (a German VAT row may have gone to the Netherlands under the threshold).
    destination: str = ""


def vat_summary(session: Session, start: date, end: date, home: str = "") -> list[VatRow]:
    """Net, VAT and gross per currency, VAT country, destination and rate; refunds count
    negative. Entries from before VAT by destination count as ``home``'s VAT.

    Read from the per-day sums the database keeps of the ledger (LedgerDay): a year is at most
    365 rows per combination, however many orders it had."""
    rows = session.execute(
        select(
            LedgerDay.currency,
            LedgerDay.tax_country,
            LedgerDay.destination_country,
            LedgerDay.tax_rate_bp,
            func.sum(LedgerDay.net),
            func.sum(LedgerDay.vat),
            func.sum(LedgerDay.gross),
        )
        .where(LedgerDay.day >= start, LedgerDay.day <= end)
        .group_by(
            LedgerDay.currency,
            LedgerDay.tax_country,
            LedgerDay.destination_country,
            LedgerDay.tax_rate_bp,
        )
    )
    out = [
        VatRow(
            c,
            home if country == BEFORE_DESTINATION else country,
            int(rate),
            int(n),
            int(v),
            int(g),
            dest,
        )
        for c, country, dest, rate, n, v, g in rows
    ]
    return sorted(
        out, key=lambda r: (r.currency, r.country == "", r.country, -r.rate_bp, r.destination)
    )


def _by_country_and_rate(rows: list[VatRow]) -> list[VatRow]:
    totals: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r.currency, r.country, r.rate_bp), [0, 0, 0])
        t[0] += r.net
        t[1] += r.vat
        t[2] += r.gross
    return [
        VatRow(c, country, rate, net, vat, gross)
        for (c, country, rate), (net, vat, gross) in sorted(
            totals.items(), key=lambda i: (i[0][0], i[0][1] == "", i[0][1], -i[0][2])
        )
    ]


def oss_return(rows: list[VatRow], home: str) -> list[VatRow]:
    """What the One-Stop-Shop return declares: VAT of other member states, per country and rate."""
    return _by_country_and_rate([r for r in rows if r.country not in (home, "")])


def domestic(rows: list[VatRow], home: str) -> list[VatRow]:
    """What the store's own VAT return declares: its VAT per rate, then exports (country "")."""
    return _by_country_and_rate([r for r in rows if r.country in (home, "")])


def vat_by_rate(rows: list[VatRow]) -> list[VatRow]:
    """The same summed over countries (country "*")."""
    totals: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r.currency, r.rate_bp), [0, 0, 0])
        t[0] += r.net
        t[1] += r.vat
        t[2] += r.gross
    return [
        VatRow(c, "*", rate, net, vat, gross)
        for (c, rate), (net, vat, gross) in sorted(
            totals.items(), key=lambda i: (i[0][0], -i[0][1])
        )
    ]
