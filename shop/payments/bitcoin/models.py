"""What the chain shows, kept apart from the order's business state.

No personal data: an invoice holds the merchant's own receive address and the amount; a payment
holds the outpoint that paid it (public chain data, needed for bookkeeping and refunds), never
the payer's addresses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, Money, UTCDateTime

INVOICE_STATUSES = ("new", "processing", "settled", "expired", "invalid")
INVOICE_EXCEPTIONS = ("", "partial", "over", "late", "reverted", "marked")
MARKS = ("", "settled", "invalid")
PAYMENT_STATUSES = ("mempool", "confirmed", "removed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class BitcoinInvoice(Base):
    __tablename__ = "bitcoin_invoices"
    __table_args__ = (
        # Two app servers can never hand out the same address: the second insert fails.
        UniqueConstraint("descriptor_fingerprint", "derivation_index"),
        CheckConstraint(_in("status", INVOICE_STATUSES), name="status"),
        CheckConstraint(_in("exception", INVOICE_EXCEPTIONS), name="exception"),
        CheckConstraint(_in("marked", MARKS), name="marked"),
        CheckConstraint("amount_sats > 0", name="amount"),
        Index("ix_bitcoin_invoices_status_expires_at", "status", "expires_at"),
        Index("ix_bitcoin_invoices_monitor_until", "monitor_until"),
        # The few invoices watched past their window: money in flight, or a reverted payment.
        Index("ix_bitcoin_invoices_exception", "exception"),
        # The address-gap check (every watcher round) asks for the last address that received
        # anything: only those invoices are in this index, so that is one index probe even
        # when none of a million has been paid (otherwise a full scan every round).
        Index(
            "ix_bitcoin_invoices_received",
            "descriptor_fingerprint",
            "derivation_index",
            postgresql_where=text("received_sats > 0"),
            sqlite_where=text("received_sats > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One invoice per order: reloading the payment page shows the same one.
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    descriptor_fingerprint: Mapped[str] = mapped_column(String(64))
    derivation_index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(100))
    script_pubkey: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    # What the invoice covers in the order's currency (reported as paid once it settles) and
    # the rate it was converted at, locked for the payment window.
    order_total: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[str] = mapped_column(String(40))  # fiat major units per BTC; "1" for a BTC store
    rate_quote_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What the chain shows (status) apart from what a person should know about it (exception),
    # as BTCPay Server models it; both are set only by invoice.evaluate from `decide`.
    status: Mapped[str] = mapped_column(String(16), default="new")
    exception: Mapped[str] = mapped_column(String(16), default="")
    # A merchant's decision that overrides the chain: "settled" or "invalid", with a reason.
    marked: Mapped[str] = mapped_column(String(16), default="")
    mark_reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Payments arriving until then are still detected (and flagged as late).
    monitor_until: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # True once the order was told it is paid: a later loss is a reversal, not just invalid.
    paid_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    received_sats: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_sats: Mapped[int] = mapped_column(BigInteger, default=0)
    credited_sats: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped on every change the order hears about: keys its PaymentEvents, so a replay after a
    # crash repeats nothing and a flag raised again after a withdrawal gets a new key.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # The order's attention lines this invoice raised and has not withdrawn (one per line).
    flags: Mapped[str] = mapped_column(Text, default="")
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)

    payments: Mapped[list[BitcoinPayment]] = relationship(
        back_populates="invoice", order_by="BitcoinPayment.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[BitcoinInvoiceEvent]] = relationship(
        back_populates="invoice", order_by="BitcoinInvoiceEvent.id", cascade="all, delete-orphan"
    )


class BitcoinPayment(Base):
    """One output paying an invoice's address, keyed by its outpoint so it is counted once."""

    __tablename__ = "bitcoin_payments"
    __table_args__ = (
        CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount_sats > 0", name="amount"),
        Index("ix_bitcoin_payments_status", "status"),
        Index("ix_bitcoin_payments_block_hash", "block_hash"),
        Index("ix_bitcoin_payments_block_height", "block_height"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("bitcoin_invoices.id", ondelete="CASCADE"))
    outpoint: Mapped[str] = mapped_column(String(80), unique=True)  # "txid:vout"
    txid: Mapped[str] = mapped_column(String(64))
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    # The coins the paying transaction spends ("txid:n,..."): a transaction spending any of them
    # conflicts with this one, and only one of the two can ever count. Public chain data.
    spends: Mapped[str] = mapped_column(Text, default="")
    # Zero-conf is refused for a transaction with unconfirmed parents (they can vanish) or one
    # seen in a conflict (someone is already replacing coins).
    unconfirmed_parents: Mapped[bool] = mapped_column(Boolean, default=True)
    conflict_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    block_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    block_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    invoice: Mapped[BitcoinInvoice] = relationship(back_populates="payments")


class BitcoinInvoiceEvent(Base):
    """Every state advance of an invoice, for the merchant and for debugging."""

    __tablename__ = "bitcoin_invoice_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("bitcoin_invoices.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str] = mapped_column(String(40))  # "status" or "status/exception"
    to_state: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")

    invoice: Mapped[BitcoinInvoice] = relationship(back_populates="events")


class BitcoinIndexCounter(Base):
    """Next receive index per descriptor; taken with one UPDATE ... RETURNING (a row lock)."""

    __tablename__ = "bitcoin_index_counters"

    descriptor_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_index: Mapped[int] = mapped_column(Integer)


class BitcoinBlock(Base):
    """Recent blocks the watcher processed: where to resume, and how to spot a reorg."""

    __tablename__ = "bitcoin_blocks"

    height: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BitcoinWatcherStatus(Base):
    """One row: when the watcher last reached the node, so the payment page can say it is late."""

    __tablename__ = "bitcoin_watcher_status"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    tip_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
