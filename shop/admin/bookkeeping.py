"""Bookkeeping from the privacy module's ledger: VAT summary per rate and country.

An OSS return lists, per member state of consumption, the VAT charged there at each rate; the
domestic return the store's own VAT and the tax-free exports. Each ledger rate row says whose
VAT it is (``tax_country``), so both come from the same rows.

No Flask. The ledger holds no personal data; the CSV export is the ledger's own
(shop.privacy.ledger.export_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.privacy.models import LedgerEntry, LedgerRate


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) UTC, like the ledger's CSV export."""
    return (datetime(start.year, start.month, start.day, tzinfo=UTC),
            datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1))


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
    negative. Entries from before VAT by destination count as ``home``'s VAT."""
    lo, hi = _bounds(start, end)
    rows = session.execute(
        select(LedgerEntry.currency, LedgerRate.tax_country, LedgerEntry.destination_country,
               LedgerRate.tax_rate_bp,
               func.sum(LedgerRate.net), func.sum(LedgerRate.vat), func.sum(LedgerRate.gross))
        .join(LedgerRate, LedgerRate.entry_id == LedgerEntry.id)
        .where(LedgerEntry.entry_date >= lo, LedgerEntry.entry_date < hi)
        .group_by(LedgerEntry.currency, LedgerRate.tax_country, LedgerEntry.destination_country,
                  LedgerRate.tax_rate_bp)
    )
    out = [VatRow(c, home if country is None else country, int(rate), int(n), int(v), int(g), dest)
           for c, country, dest, rate, n, v, g in rows]
    return sorted(out, key=lambda r: (r.currency, r.country == "", r.country, -r.rate_bp,
                                      r.destination))


def _by_country_and_rate(rows: list[VatRow]) -> list[VatRow]:
    totals: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r.currency, r.country, r.rate_bp), [0, 0, 0])
        t[0] += r.net
        t[1] += r.vat
        t[2] += r.gross
    return [VatRow(c, country, rate, *t) for (c, country, rate), t in
            sorted(totals.items(), key=lambda i: (i[0][0], i[0][1] == "", i[0][1], -i[0][2]))]


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
    return [VatRow(c, "*", rate, *t) for (c, rate), t in sorted(totals.items(), key=lambda i: (i[0][0], -i[0][1]))]
