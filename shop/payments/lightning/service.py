"""Lightning invoices: one per order, and what the node's settlements mean for the order.

`ensure_invoice` makes the order's invoice at the node once (a reserved row keeps a reload, a
second tab or a second app server from making another). `record_settlement` is the one place a
settled invoice reaches the order: a PAID event keyed by the payment hash, so however often the
stream, the replay after a reconnect and the reconciliation poll report it, the order is paid
once. No Flask here; the functions that call the node run their own short units of work, so no
transaction is open while the node is waited for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop.db import Database, insert_for, rowcount, utcnow
from shop.i18n import N_
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import OrderStatus
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.payments.lightning.backend import (
    LightningBackend,
    LightningError,
    NodeInvoice,
    check_bolt11,
)
from shop.payments.lightning.models import LightningInvoice, LightningStreamState

log = logging.getLogger(__name__)

PROVIDER = "lightning"
METHOD = "lightning"  # LightningPayment.code
# An invoice settled this long after its expiry is still credited (and flagged as late).
LATE_WINDOW = timedelta(days=7)
# A row left "creating" by a process that died mid-call is taken over after this.
STALE_CREATING = timedelta(minutes=2)


class LightningUnavailable(Exception):
    """Lightning cannot be offered for this order now; the message is for the customer."""


class NodeFailed(LightningUnavailable):
    """The node did not make the invoice (unreachable, refused, or an invoice not as asked)."""


@dataclass(frozen=True)
class InvoiceRequest:
    order_id: int
    order_ref: str
    amount_msat: int
    order_total: int  # what it covers, in the order's currency (minor units)
    currency: str
    rate: str
    description: str
    expires_at: datetime


def description_for(store_name: str, order_number: str) -> str:
    # Names the shop and the order, nothing about the customer: the payer's wallet keeps it,
    # and anyone the invoice is forwarded to reads it.
    return f"{store_name} order {order_number}"


def get_invoice(session: Session, order_id: int) -> LightningInvoice | None:
    """The order's current invoice (the latest, when the customer had an expired one replaced)."""
    return session.scalar(
        select(LightningInvoice)
        .where(LightningInvoice.order_id == order_id)
        .order_by(LightningInvoice.seq.desc())
        .limit(1)
    )


def replaceable(invoice: LightningInvoice, now: datetime) -> bool:
    """An invoice the customer may ask to replace: expired without a payment."""
    return invoice.status == "open" and invoice.expires_at <= now


def ensure_invoice(
    database: Database,
    backend: LightningBackend,
    request: InvoiceRequest,
    now: datetime | None = None,
    *,
    replaces: int | None = None,
) -> LightningInvoice:
    """The order's invoice, made at the node on the first call only. With `replaces` (the
    `seq` of the expired invoice the customer saw), a new one replaces it, once: a repeat of
    the same request finds the replacement. Raises LightningUnavailable when the node cannot
    make it (the caller leaves Lightning out)."""
    now = now or utcnow()
    with database.job_session(write_lock=True) as session:
        existing = get_invoice(session, request.order_id)
        claimed_id, seq = None, 0
        if existing is None or (
            replaces is not None and existing.seq == replaces and replaceable(existing, now)
        ):
            order = session.get(Order, request.order_id)
            if order is None or order.state != OrderStatus.PENDING_PAYMENT:
                raise LightningUnavailable(N_("This order cannot be paid now."))
            row = LightningInvoice(
                order_id=request.order_id,
                seq=existing.seq + 1 if existing is not None else 1,
                backend=backend.name,
                bolt11="",
                amount_msat=request.amount_msat,
                order_total=request.order_total,
                currency=request.currency,
                rate=request.rate,
                status="creating",
                received_msat=0,
                created_at=now,
                expires_at=request.expires_at,
                paid_reported=False,
                error="",
            )
            try:
                # The unique (order_id, seq) lets one of two requests at once reserve it.
                with session.begin_nested():
                    session.add(row)
                claimed_id, seq = row.id, row.seq
            except IntegrityError:  # another request reserved it a moment ago
                pass
        elif _retry(existing, now):
            # Take over a failed or abandoned reservation: the conditional UPDATE lets one win.
            if rowcount(
                session.execute(
                    update(LightningInvoice)
                    .where(
                        LightningInvoice.id == existing.id,
                        LightningInvoice.status == existing.status,
                        LightningInvoice.created_at == existing.created_at,
                    )
                    .values(
                        status="creating",
                        created_at=now,
                        error="",
                        backend=backend.name,
                        amount_msat=request.amount_msat,
                        order_total=request.order_total,
                        rate=request.rate,
                        expires_at=request.expires_at,
                    )
                )
            ):
                claimed_id, seq = existing.id, existing.seq
        elif existing.status != "creating":
            return existing
    if claimed_id is None:
        with database.job_session() as session:
            current = get_invoice(session, request.order_id)
        if current is None or current.status in ("creating", "failed"):
            raise LightningUnavailable(
                N_("The Lightning invoice is being prepared; reload the page in a moment.")
            )
        return current
    expiry = max(60, int((request.expires_at - now).total_seconds()))
    # Node labels are unique (Core Lightning refuses a second "shop-<ref>").
    label = f"shop-{request.order_ref}" + (f"-{seq}" if seq > 1 else "")
    try:
        payment_hash, text = backend.create_invoice(
            request.amount_msat, request.description, expiry, label=label
        )
        check_bolt11(text, payment_hash, request.amount_msat, request.description)
    except LightningError as exc:
        log.warning("lightning invoice not created order_id=%d error=%s", request.order_id, exc)
        with database.job_session(write_lock=True) as session:
            session.execute(
                update(LightningInvoice)
                .where(LightningInvoice.id == claimed_id)
                .values(status="failed", error=str(exc)[:300])
            )
        raise NodeFailed(
            N_("Lightning is unavailable right now (the shop's node cannot be reached).")
        ) from None
    with database.job_session(write_lock=True) as session:
        session.execute(
            update(LightningInvoice)
            .where(LightningInvoice.id == claimed_id)
            .values(status="open", payment_hash=payment_hash, bolt11=text)
        )
        order = orders.get_by_ref(session, request.order_ref, lock=True)
        if order is not None and order.state == OrderStatus.PENDING_PAYMENT:
            # The customer may pay until the invoice expires: the stock must not go back before.
            orders.extend_reservation(
                session,
                order,
                request.expires_at,
                "Stock held while the Lightning invoice is open",
                now,
            )
        return session.get_one(LightningInvoice, claimed_id)


def _retry(invoice: LightningInvoice, now: datetime) -> bool:
    if invoice.status == "failed":
        return True
    return invoice.status == "creating" and now - invoice.created_at > STALE_CREATING


def record_settlement(
    session: Session, settled: NodeInvoice, now: datetime | None = None
) -> list[PaymentEvent]:
    """A settled invoice reported by the node: the order hears it once (by payment hash).
    Invoices the shop did not make (the node's other business) are ignored."""
    now = now or utcnow()
    if settled.state != "settled":
        return []
    stmt = select(LightningInvoice).where(LightningInvoice.payment_hash == settled.payment_hash)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    invoice = session.scalar(stmt)
    if invoice is None or invoice.paid_reported:
        return []
    order = session.get(Order, invoice.order_id)
    assert order is not None
    at = settled.settled_at or now
    invoice.status, invoice.settled_at = "settled", at
    invoice.received_msat = settled.received_msat or settled.amount_msat
    invoice.paid_reported = True
    events = []

    def event(kind: PaymentEventKind, key: str, note: str, amount: int = 0) -> None:
        events.append(
            PaymentEvent(
                provider=PROVIDER,
                key=f"{invoice.payment_hash}:{key}",
                order_ref=order.ref,
                kind=kind,
                amount=amount,
                currency=invoice.currency,
                reference=f"lightning:{invoice.payment_hash}",
                note=note,
                # Also when it rode along with an on-chain request: the books say Lightning.
                method=METHOD,
            )
        )

    sats = invoice.received_msat // 1000
    if invoice.received_msat < invoice.amount_msat:
        # A node settles only the full amount; a smaller one means someone else's invoice logic.
        event(
            PaymentEventKind.ATTENTION,
            "short",
            f"Lightning invoice settled with {sats} sats, less than the "
            f"{invoice.amount_msat // 1000} due: not counted as paid; check the node.",
        )
    else:
        event(
            PaymentEventKind.PAID,
            "paid",
            f"Paid over Lightning: {sats} sats",
            amount=invoice.order_total,
        )
        if at > invoice.expires_at:
            event(
                PaymentEventKind.ATTENTION,
                "late",
                f"Lightning payment arrived after its invoice expired "
                f"({at:%Y-%m-%d %H:%M} UTC, due by {invoice.expires_at:%H:%M}): check "
                "stock and whether the customer still wants the order.",
            )
    for e in events:
        orders.apply_payment_event(session, e, now)
    return events


# ---------------------------------------------------------------- the stream's resume point


def stream_state(session: Session, backend: str) -> LightningStreamState:
    state = session.get(LightningStreamState, backend)
    if state is None:
        # Two sessions may create it at once (the stream and the reconcile): one insert wins.
        session.execute(
            insert_for(session, LightningStreamState)
            .values(backend=backend, last_index=0, last_error="")
            .on_conflict_do_nothing(index_elements=["backend"])
        )
        state = session.get_one(LightningStreamState, backend)
    return state


def handle_settled(
    database: Database, backend: str, batch: list[NodeInvoice], now: datetime | None = None
) -> list[PaymentEvent]:
    """Settlements from the stream: applied and the resume index moved, in one transaction, so
    a crash before the commit replays them and after it never does."""
    with database.job_session(write_lock=True) as session:
        events = []
        for settled in batch:
            events += record_settlement(session, settled, now)
            # Keep the identity map small: every autoflush scans it, so a batch would slow
            # down with its length.
            session.flush()
            session.expunge_all()
        state = stream_state(session, backend)
        state.last_index = max([state.last_index, *(s.index for s in batch)])
        return events


def reconcile(
    database: Database, backend: LightningBackend, now: datetime | None = None, limit: int = 500
) -> int:
    """Ask the node about every open invoice still worth watching: catches what a stream
    outage missed. Returns how many settlements were new."""
    now = now or utcnow()
    with database.job_session() as session:
        hashes = [
            payment_hash
            for payment_hash in session.scalars(
                select(LightningInvoice.payment_hash)
                .where(
                    LightningInvoice.status == "open",
                    LightningInvoice.backend == backend.name,
                    LightningInvoice.expires_at > now - LATE_WINDOW,
                )
                .order_by(LightningInvoice.expires_at)
                .limit(limit)
            )
            if payment_hash is not None  # an open invoice has one; the column allows none
        ]
    found = 0
    for payment_hash in hashes:
        node_invoice = backend.lookup(payment_hash)  # outside any transaction
        if node_invoice is None:
            continue
        if node_invoice.state == "settled":
            with database.job_session(write_lock=True) as session:
                found += bool(record_settlement(session, node_invoice, now))
        elif node_invoice.state == "canceled":
            with database.job_session(write_lock=True) as session:
                session.execute(
                    update(LightningInvoice)
                    .where(
                        LightningInvoice.payment_hash == payment_hash,
                        LightningInvoice.status == "open",
                    )
                    .values(status="canceled")
                )
    return found


def record_status(
    database: Database, backend: str, error: str | None, now: datetime | None = None
) -> None:
    now = now or utcnow()
    with database.job_session(write_lock=True) as session:
        state = stream_state(session, backend)
        if error is None:
            state.last_success_at, state.last_error = now, ""
        else:
            state.last_error, state.last_error_at = error[:300], now


def last_index(database: Database, backend: str) -> int:
    with database.job_session() as session:
        state = session.get(LightningStreamState, backend)
        return state.last_index if state else 0
