"""Tables of the privacy feature: the bookkeeping ledger and the purge's run marker.

The ledger holds what tax law asks for and nothing personal: no name, email, address or order
token. Rows are written once; database triggers (migration 0003) and an ORM guard refuse every
UPDATE, and only the purge deletes them, after the fiscal retention period.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, Money, UTCDateTime, utcnow


class LedgerImmutable(Exception):
    """A ledger record was about to be changed; corrections are new (negative) entries."""


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("kind IN ('sale', 'refund')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Natural key ("sale:2026-000042", "refund:2026-000042:1"): one sale per order, ever.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    order_number: Mapped[str] = mapped_column(String(20), index=True)
    order_date: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the money moved (payment or refund): what the fiscal period counts.
    entry_date: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    # Minor units; negative for refunds.
    net: Mapped[int] = mapped_column(Money)
    vat: Mapped[int] = mapped_column(Money)
    gross: Mapped[int] = mapped_column(Money)
    payment_method: Mapped[str] = mapped_column(String(32))
    payment_reference: Mapped[str] = mapped_column(String(500), default="")
    destination_country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    lines: Mapped[list[LedgerLine]] = relationship(
        back_populates="entry",
        order_by="LedgerLine.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    rates: Mapped[list[LedgerRate]] = relationship(
        back_populates="entry",
        order_by="LedgerRate.tax_rate_bp.desc()",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class LedgerLine(Base):
    __tablename__ = "ledger_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_entries.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(420))
    sku: Mapped[str] = mapped_column(String(64), default="")
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Money)  # gross, minor units
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    gross: Mapped[int] = mapped_column(Money)

    entry: Mapped[LedgerEntry] = relationship(back_populates="lines")


class LedgerRate(Base):
    """Net, VAT and gross of one entry at one VAT rate."""

    __tablename__ = "ledger_rates"
    __table_args__ = (UniqueConstraint("entry_id", "tax_country", "tax_rate_bp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id", ondelete="CASCADE"))
    # The country whose VAT this is (an OSS return lists it per member state of consumption);
    # "" for an export without EU VAT; NULL in entries from before VAT by destination (the
    # store's own country's VAT).
    tax_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(Money)
    vat: Mapped[int] = mapped_column(Money)
    gross: Mapped[int] = mapped_column(Money)

    entry: Mapped[LedgerEntry] = relationship(back_populates="rates")


# LedgerDay's tax_country for rate rows from before VAT by destination (the store's own VAT).
BEFORE_DESTINATION = "-"


class LedgerDay(Base):
    """Sums of the ledger's rate rows per UTC day of entry, currency, destination and rate.

    Written only by a database trigger on ledger_rates (migration 0013), so a VAT summary reads
    one row per day and combination; the purge deletes past days with their entries.
    """

    __tablename__ = "ledger_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    # LedgerRate.tax_country, with BEFORE_DESTINATION for its NULL (a key column cannot be NULL).
    tax_country: Mapped[str] = mapped_column(String(2), primary_key=True)
    destination_country: Mapped[str] = mapped_column(String(2), primary_key=True)
    tax_rate_bp: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    net: Mapped[int] = mapped_column(Money)
    vat: Mapped[int] = mapped_column(Money)
    gross: Mapped[int] = mapped_column(Money)


class PrivacyJobRun(Base):
    """When a periodic privacy job last ran, so the worker runs the purge once a day."""

    __tablename__ = "privacy_job_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeyEpoch(Base):
    """An epoch key's bookkeeping; the key itself is a file in the key ring folder, never here.

    Every order's data key is wrapped by one epoch key. The purge destroys an epoch's file when
    its ``bucket`` day has come, when an erasure asked for it (``shred_after``) or when nothing
    is wrapped by it any more, after re-wrapping the orders that still need their data under
    another epoch. No personal data: an id, a date and timestamps.
    """

    __tablename__ = "key_epochs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # hex, names the key file
    # The day from which the purge destroys it (orders due for erasure before then use it).
    bucket: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by an erasure: destroy at the next purge, whatever the bucket says.
    shred_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


LEDGER_MODELS = (LedgerEntry, LedgerLine, LedgerRate)


def _refuse_update(_mapper, _connection, target) -> None:
    raise LedgerImmutable(f"{type(target).__name__} rows are immutable; record a new entry")


for _model in LEDGER_MODELS:
    event.listen(_model, "before_update", _refuse_update)
