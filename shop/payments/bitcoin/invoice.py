"""Bitcoin invoices: address allocation, the invoice state machine, and what the chain means.

The chain watcher (and the demo's simulated chain) report facts — "this outpoint pays that
script, unconfirmed / in block B / gone" — through `record_output`, `confirm_output` and
`remove_output`; `evaluate` turns an invoice's payments into its state, and every change of state
goes through `transition`. The order hears about it only as PaymentEvents handed to
orders.service.apply_payment_event, each keyed so a repeat is harmless.

Services take a Session and never commit. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shop.db import utcnow
from shop.money import BTC, SATS_PER_BTC
from shop.orders import service as orders
from shop.orders.models import Order, PaymentRecord
from shop.orders.states import OrderStatus
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.payments.bitcoin.descriptor import WatchOnlyDescriptor
from shop.payments.bitcoin.models import (
    BitcoinIndexCounter,
    BitcoinInvoice,
    BitcoinInvoiceEvent,
    BitcoinPayment,
)
from shop.payments.bitcoin.settings import BitcoinPolicy

PROVIDER = "bitcoin"


class InvoiceState(StrEnum):
    NEW = "new"
    SEEN = "seen"  # enough is on its way, not yet confirmed as the policy wants
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"
    INVALID = "invalid"  # what was seen was replaced, double-spent or reorged out before settling
    REVERTED = "reverted"  # reorged out after the order was told it is paid


I = InvoiceState
SETTLED = frozenset({I.CONFIRMED, I.OVERPAID, I.PAID_LATE})
_UNSETTLED = frozenset({I.NEW, I.SEEN, I.EXPIRED, I.UNDERPAID, I.INVALID})

# A payment can arrive (or vanish) at any time, so most unsettled states lead to most others;
# the rules that matter: nothing settled goes back to unsettled except through REVERTED, and
# only a settled invoice can be reverted.
ALLOWED: dict[InvoiceState, frozenset[InvoiceState]] = {
    **{s: (_UNSETTLED | SETTLED) - {s} for s in _UNSETTLED},
    I.CONFIRMED: frozenset({I.OVERPAID, I.REVERTED}),
    I.OVERPAID: frozenset({I.REVERTED}),
    I.PAID_LATE: frozenset({I.OVERPAID, I.REVERTED}),
    I.REVERTED: frozenset({I.CONFIRMED, I.OVERPAID, I.PAID_LATE}),
}
# Watched for new payments: open ones, and settled ones for a while (over-/late payments).
OPEN_STATES = frozenset(I) - {I.REVERTED}

LABELS: dict[InvoiceState, str] = {
    I.NEW: "Waiting for your payment",
    I.SEEN: "Payment seen, waiting for confirmation",
    I.CONFIRMED: "Paid",
    I.EXPIRED: "Expired: no payment arrived in time",
    I.UNDERPAID: "Partly paid: please send the rest to the same address",
    I.OVERPAID: "Paid (more than the amount due; the shop will be in touch)",
    I.PAID_LATE: "Paid after the invoice expired; the shop will check it",
    I.INVALID: "The payment we saw was replaced or cancelled; please pay again",
    I.REVERTED: "The confirmed payment was undone by the network; the shop will be in touch",
}


class InvoiceError(Exception):
    """Base of every named invoice error."""


class IllegalInvoiceTransition(InvoiceError):
    def __init__(self, current: InvoiceState, target: InvoiceState):
        self.current, self.target = current, target
        super().__init__(f"a {current.value} Bitcoin invoice cannot become {target.value}")


class BitcoinUnavailable(InvoiceError):
    """No usable exchange rate: Bitcoin checkout pauses, card checkout goes on."""

    def __init__(self) -> None:
        super().__init__("Bitcoin payment is temporarily unavailable (no current exchange rate). "
                         "Please try again in a few minutes or choose another payment method.")


class OrderNotPayable(InvoiceError):
    def __init__(self, status: str):
        super().__init__(f"This order is {status.replace('_', ' ')} and cannot be paid now.")


# ---------------------------------------------------------------- the state machine

def transition(session: Session, invoice: BitcoinInvoice, target: InvoiceState, note: str,
               now: datetime) -> None:
    """The one place an invoice changes state: checked against ALLOWED and logged."""
    current = I(invoice.state)
    if target == current:
        return
    if target not in ALLOWED[current]:
        raise IllegalInvoiceTransition(current, target)
    invoice.state = target.value
    if target in SETTLED and invoice.settled_at is None:
        invoice.settled_at = now
    session.add(BitcoinInvoiceEvent(invoice=invoice, at=now, from_state=current.value,
                                    to_state=target.value, note=note[:500]))


# ---------------------------------------------------------------- creating

@dataclass(frozen=True)
class LockedRate:
    """The rate an invoice was priced at: fiat major units per BTC as an exact decimal."""

    fiat_per_btc: Decimal
    quote_id: int | None = None


def sats_due(total_minor: int, currency: str, rate: LockedRate) -> int:
    if currency == BTC:
        return total_minor  # a BTC store's minor unit is the satoshi
    from shop.payments.bitcoin.rates import Quote, sats_for

    quote = Quote(currency=currency, fiat_per_btc=rate.fiat_per_btc, as_of=utcnow(),
                  id=rate.quote_id)
    return sats_for(total_minor, currency, quote)


def get_invoice(session: Session, order_id: int) -> BitcoinInvoice | None:
    return session.scalar(select(BitcoinInvoice).where(BitcoinInvoice.order_id == order_id))


def create_invoice(session: Session, order: Order, descriptor: WatchOnlyDescriptor,
                   policy: BitcoinPolicy, rate: LockedRate | None, now: datetime | None = None,
                   simulated: bool = False) -> BitcoinInvoice:
    """The order's invoice, created on first call: a fresh address and a locked amount.

    The index is taken from a per-descriptor counter with one UPDATE ... RETURNING, so the row
    lock serialises concurrent checkouts until commit, and the unique constraints on (descriptor,
    index) and script_pubkey make reuse impossible even if that were bypassed.
    """
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # Two requests for the same order (double click, two tabs): the second waits here and
        # then finds the first one's invoice.
        session.execute(select(Order.id).where(Order.id == order.id).with_for_update())
    existing = get_invoice(session, order.id)
    if existing is not None:
        return existing
    if order.state != OrderStatus.PENDING_PAYMENT:
        raise OrderNotPayable(order.status)
    if order.currency != BTC and rate is None:
        raise BitcoinUnavailable()
    locked = rate or LockedRate(Decimal(1))
    covers = order.total - order.amount_paid  # in the order's currency
    amount = sats_due(covers, order.currency, locked)
    fingerprint = descriptor.fingerprint()
    index = _next_index(session, fingerprint)
    address, script = descriptor.derive(index)
    invoice = BitcoinInvoice(
        order_id=order.id, descriptor_fingerprint=fingerprint, derivation_index=index,
        address=address, script_pubkey=script, amount_sats=amount, order_total=covers,
        currency=order.currency, rate=format(locked.fiat_per_btc, "f"),
        rate_quote_id=locked.quote_id, state=I.NEW.value, created_at=now,
        expires_at=now + policy.payment_window,
        monitor_until=now + policy.payment_window + policy.late_window,
        paid_reported=False, received_sats=0, confirmed_sats=0, simulated=simulated,
    )
    session.add(invoice)
    session.add(BitcoinInvoiceEvent(invoice=invoice, at=now, from_state="", to_state="new",
                                    note=f"Invoice for {amount} sats to address #{index}"))
    # The customer may pay until the invoice expires: the stock must not go back before.
    orders.extend_reservation(session, order, invoice.expires_at,
                              "Stock held while the Bitcoin payment request is open", now)
    session.flush()
    return invoice


def _next_index(session: Session, fingerprint: str) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(BitcoinIndexCounter).values(descriptor_fingerprint=fingerprint, next_index=0)
        .on_conflict_do_nothing(index_elements=["descriptor_fingerprint"])
    )
    taken = session.execute(
        update(BitcoinIndexCounter)
        .where(BitcoinIndexCounter.descriptor_fingerprint == fingerprint)
        .values(next_index=BitcoinIndexCounter.next_index + 1)
        .returning(BitcoinIndexCounter.next_index)
    ).scalar_one()
    return taken - 1


def address_gap(session: Session, fingerprint: str) -> int:
    """Handed-out addresses after the last one that received anything.

    A wallet stops looking after its gap limit (often 20) of unused addresses in a row; past
    that, the merchant's wallet will not show funds that did arrive until its limit is raised.
    """
    last_used = session.scalar(
        select(BitcoinInvoice.derivation_index)
        .where(BitcoinInvoice.descriptor_fingerprint == fingerprint,
               BitcoinInvoice.received_sats > 0)
        .order_by(BitcoinInvoice.derivation_index.desc()).limit(1)
    )
    highest = session.scalar(
        select(BitcoinInvoice.derivation_index)
        .where(BitcoinInvoice.descriptor_fingerprint == fingerprint)
        .order_by(BitcoinInvoice.derivation_index.desc()).limit(1)
    )
    if highest is None:
        return 0
    return highest - (last_used if last_used is not None else -1)


# ---------------------------------------------------------------- chain facts

@dataclass(frozen=True)
class Output:
    """An output paying one of our scripts, as found in a transaction."""

    txid: str
    vout: int
    sats: int
    script_pubkey: bytes

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


def record_output(session: Session, invoice: BitcoinInvoice, output: Output, *,
                  replaceable: bool, now: datetime, block_hash: str | None = None,
                  height: int | None = None) -> BitcoinPayment:
    """Remember an output paying `invoice` (idempotent by outpoint)."""
    # The unique outpoint column guards against a second row; this lookup avoids trying.
    payment = next((p for p in invoice.payments if p.outpoint == output.outpoint), None)
    if payment is None:
        payment = BitcoinPayment(
            invoice=invoice, outpoint=output.outpoint, txid=output.txid, amount_sats=output.sats,
            status="mempool", replaceable=replaceable, first_seen_at=now,
        )
        session.add(payment)
    if block_hash is not None:
        confirm_payment(payment, block_hash, height, now)
    elif payment.status == "removed":
        # Back in the mempool (a reorg returned it, or it was rebroadcast).
        payment.status, payment.removed_at, payment.replaceable = "mempool", None, replaceable
    return payment


def confirm_payment(payment: BitcoinPayment, block_hash: str, height: int | None,
                    now: datetime) -> None:
    payment.status, payment.block_hash, payment.block_height = "confirmed", block_hash, height
    payment.removed_at = None
    if payment.confirmed_at is None:
        payment.confirmed_at = now


def unconfirm_payment(payment: BitcoinPayment) -> None:
    """Its block left the chain; the watcher decides next whether it is back in the mempool."""
    payment.status, payment.block_hash, payment.block_height = "mempool", None, None
    payment.confirmed_at = None


def remove_payment(payment: BitcoinPayment, now: datetime) -> None:
    payment.status, payment.removed_at = "removed", now
    payment.block_hash = payment.block_height = None


# ---------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class Tally:
    received: int  # every live payment, confirmed or not
    settled: int  # what the policy accepts as final
    confirmed: int  # in a block, however deep
    late: bool  # the amount due was only reached after the invoice expired


def tally(invoice: BitcoinInvoice, tip_height: int | None, policy: BitcoinPolicy) -> Tally:
    live = sorted((p for p in invoice.payments if p.status != "removed"),
                  key=lambda p: (p.first_seen_at, p.id or 0))
    received = settled = confirmed = 0
    enough = invoice.amount_sats - policy.tolerance_for(invoice.amount_sats)
    late = False
    for p in live:
        if received < enough <= received + p.amount_sats:
            late = p.first_seen_at > invoice.expires_at
        received += p.amount_sats
        if p.status == "confirmed":
            confirmed += p.amount_sats
            depth = (tip_height - p.block_height + 1) if (tip_height is not None
                                                          and p.block_height is not None) else 1
            if depth >= policy.confirmations:
                settled += p.amount_sats
    zero_conf = [p for p in live if p.status == "mempool"]
    if (policy.zero_conf_max_sats and invoice.amount_sats <= policy.zero_conf_max_sats
            and zero_conf and not any(p.replaceable for p in zero_conf)):
        # Small amounts may be accepted unconfirmed, but never from a transaction its sender
        # has said they may still replace.
        settled += sum(p.amount_sats for p in zero_conf)
    return Tally(received, settled, confirmed, late)


def evaluate(session: Session, invoice: BitcoinInvoice, tip_height: int | None,
             policy: BitcoinPolicy, now: datetime | None = None) -> list[PaymentEvent]:
    """Bring the invoice's state in line with its payments; apply what the order must hear.

    Returns the events that were applied (some may have been duplicates: harmless).
    """
    now = now or utcnow()
    t = tally(invoice, tip_height, policy)
    invoice.received_sats, invoice.confirmed_sats = t.received, t.confirmed
    due = invoice.amount_sats
    enough = due - policy.tolerance_for(due)
    state = I(invoice.state)
    events: list[PaymentEvent] = []
    order = session.get(Order, invoice.order_id)
    assert order is not None

    def event(kind: PaymentEventKind, key: str, note: str, amount: int = 0) -> None:
        events.append(PaymentEvent(
            provider=PROVIDER, key=f"{invoice.id}:{key}", order_ref=order.ref, kind=kind,
            amount=amount, currency=order.currency, reference=invoice.address, note=note,
        ))

    if t.settled >= enough:
        target = I.PAID_LATE if t.late else (I.OVERPAID if t.settled > due else I.CONFIRMED)
        if state == I.PAID_LATE and target == I.CONFIRMED:
            target = I.PAID_LATE
        if state in SETTLED and target not in ALLOWED[state]:
            target = state
        note = f"{t.settled} of {due} sats settled"
        if state == I.REVERTED:
            event(PaymentEventKind.ATTENTION, f"settled-again:{t.settled}",
                  f"The reverted bitcoin payment is settled again ({note}).")
        transition(session, invoice, target, note, now)
        if not invoice.paid_reported:
            invoice.paid_reported = True
            event(PaymentEventKind.PAID, "paid",
                  f"Paid in bitcoin: {t.settled} sats to {invoice.address}",
                  amount=invoice.order_total)
        if t.late:
            event(PaymentEventKind.ATTENTION, "late",
                  "Bitcoin payment arrived after the invoice expired "
                  f"({invoice.expires_at:%Y-%m-%d %H:%M} UTC); the rate was locked only until "
                  "then: check before shipping.")
        if t.received > due:
            event(PaymentEventKind.ATTENTION, f"overpaid:{t.received}",
                  f"Overpaid by {t.received - due} sats ({t.received} received for {due}): "
                  "refund the difference.")
    elif invoice.paid_reported:
        # It was settled and the order told so; now the money is not there any more.
        # A reorganisation took its block away, or an accepted unconfirmed payment was replaced.
        transition(session, invoice, I.REVERTED,
                   f"Only {t.settled} of {due} sats still settled", now)
        gone = sorted(p.outpoint for p in invoice.payments if p.status != "confirmed")
        event(PaymentEventKind.REVERTED, "reverted:" + ",".join(gone)[:150],
              f"Bitcoin payment reverted by a chain reorganisation or double spend ({t.settled} "
              f"of {due} sats still settled): do not ship until it confirms again.")
    else:
        if t.received >= enough:
            target = I.SEEN
        elif t.received > 0:
            target = I.UNDERPAID
        elif any(p.status == "removed" for p in invoice.payments):
            target = I.INVALID
        elif now >= invoice.expires_at:
            target = I.EXPIRED
        else:
            target = I.NEW if state == I.NEW else state
        if state == I.REVERTED:
            target = state
        if target != state:
            transition(session, invoice, target, f"{t.received} of {due} sats received", now)
        if target == I.SEEN and order.state == OrderStatus.PENDING_PAYMENT:
            # Paid but not yet confirmed: a slow confirmation must not release the stock.
            orders.extend_reservation(session, order, invoice.monitor_until,
                                      "Stock held until the Bitcoin payment confirms", now)
        if target == I.INVALID:
            for p in invoice.payments:
                if p.status == "removed":
                    event(PaymentEventKind.ATTENTION, f"{p.outpoint}:removed",
                          f"Bitcoin payment {p.outpoint} was replaced, double-spent or "
                          "reorganised away before it confirmed.")
        if target == I.UNDERPAID and now >= invoice.expires_at:
            event(PaymentEventKind.ATTENTION, f"underpaid:{t.received}",
                  f"Underpaid: {t.received} of {due} sats received by the deadline; refund or "
                  "ask for the rest.")
    if I(invoice.state) in (I.SEEN, I.UNDERPAID):
        for p in invoice.payments:
            if p.status != "removed":
                event(PaymentEventKind.PENDING, f"{p.outpoint}:seen",
                      f"Bitcoin payment of {p.amount_sats} sats seen "
                      f"({'in a block' if p.status == 'confirmed' else 'unconfirmed'})")
    repeatable = [e.key for e in events if e.kind != PaymentEventKind.PAID]  # PAID: said once
    if repeatable:
        # Most re-evaluations repeat what was already said: skip those without a failed insert.
        known = set(session.scalars(select(PaymentRecord.key).where(
            PaymentRecord.provider == PROVIDER, PaymentRecord.key.in_(repeatable))))
        events = [e for e in events if e.key not in known]
    for e in events:
        orders.apply_payment_event(session, e, now)
    return events


def expire_invoices(session: Session, policy: BitcoinPolicy, now: datetime | None = None,
                    limit: int = 1000) -> int:
    """Time-only changes (no node needed): new invoices past their window become expired,
    underpaid ones past it are flagged. Safe to run from several workers at once."""
    now = now or utcnow()
    stmt = (select(BitcoinInvoice)
            .where(BitcoinInvoice.state.in_([I.NEW.value, I.UNDERPAID.value]),
                   BitcoinInvoice.expires_at <= now, BitcoinInvoice.monitor_until > now)
            .order_by(BitcoinInvoice.expires_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    count = 0
    for invoice in session.scalars(stmt):
        before = invoice.state
        events = evaluate(session, invoice, None if invoice.simulated else _tip(session), policy,
                          now)
        count += int(invoice.state != before or bool(events and before == I.UNDERPAID))
    return count


def _tip(session: Session) -> int | None:
    from shop.payments.bitcoin.models import BitcoinBlock

    return session.scalar(select(BitcoinBlock.height).order_by(BitcoinBlock.height.desc()).limit(1))


def btc_text(sats: int) -> str:
    """8-decimal BTC text from integer sats, exact (no floats): 123456 -> '0.00123456'."""
    whole, frac = divmod(sats, SATS_PER_BTC)
    return f"{whole}.{frac:08d}"


def bip21_uri(invoice: BitcoinInvoice) -> str:
    # Only address and amount: a label or message would tell the payer's wallet (and anyone
    # reading its backups) which shop this was for.
    return f"bitcoin:{invoice.address}?amount={btc_text(remaining_sats(invoice))}"


def remaining_sats(invoice: BitcoinInvoice) -> int:
    return max(invoice.amount_sats - invoice.received_sats, 0)

