"""Stored BTC exchange-rate quotes: written by the worker, read by checkout.

No personal data: a quote is public market data, fetched without anything about a customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, UTCDateTime


class RateQuote(Base):
    __tablename__ = "rate_quotes"
    __table_args__ = (
        CheckConstraint("as_of <= fetched_at", name="as_of_before_fetch"),
        Index("ix_rate_quotes_currency_as_of", "currency", "as_of"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # ISO 4217 code of the fiat side; a BTC store needs no quotes at all.
    currency: Mapped[str] = mapped_column(String(3))
    # Price of ONE BITCOIN in MAJOR fiat units (euros, not cents), an exact decimal string
    # such as "87123.45": a string keeps every digit on SQLite as on PostgreSQL.
    fiat_per_btc: Mapped[str] = mapped_column(String(40))
    # JSON list of the exchange prices the median was taken over:
    # [{"source": "kraken", "price": "87120.1", "at": "2026-11-27T23:00:00+00:00"}, ...]
    sources: Mapped[str] = mapped_column(Text)
    # The oldest of those prices' times: the quote is as old as its oldest input.
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
