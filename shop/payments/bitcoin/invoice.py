"""Bitcoin invoices: address allocation, and what the node's view of the chain means for them.

The chain watcher (and the demo's simulated chain) record facts — "this outpoint pays that
script: unconfirmed / in block B / gone" — through `record_output`, `confirm_payment`,
`unconfirm_payment` and `remove_payment`. `decide` is a pure function of those facts, the time
and the policy; `evaluate`, the only writer of an invoice's status, applies its decision and
tells the order through PaymentEvents handed to orders.service.apply_payment_event, each keyed
so a repeat is harmless.

Services take a Session and never commit. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shop.db import insert_for, utcnow
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.money import BTC, SATS_PER_BTC
from shop.orders import service as orders
from shop.orders.models import Order, PaymentRecord
from shop.orders.states import LABELS, OrderStatus
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.payments.bitcoin.descriptor import WatchOnlyDescriptor
from shop.payments.bitcoin.models import (
    BitcoinBlock,
    BitcoinIndexCounter,
    BitcoinInvoice,
    BitcoinInvoiceEvent,
    BitcoinPayment,
)
from shop.payments.bitcoin.rates import LockedRate, sats_due
from shop.payments.bitcoin.settings import BitcoinPolicy

PROVIDER = "bitcoin"


class Status(StrEnum):
    """What the chain shows about the invoice."""

    NEW = "new"  # nothing (or not enough) arrived, and there is still time
    PROCESSING = "processing"  # enough is on its way, not yet final as the policy wants
    SETTLED = "settled"  # final: the order was (or is now) told it is paid
    EXPIRED = "expired"  # the window passed without enough arriving
    INVALID = "invalid"  # what arrived was replaced or reorged away, or the merchant said so


class Exc(StrEnum):
    """What a person should know about it, apart from the status (BTCPay's "exception")."""

    NONE = ""
    PARTIAL = "partial"  # some, not enough
    OVER = "over"  # more than due is confirmed
    LATE = "late"  # the amount was only reached after the window
    REVERTED = "reverted"  # the order was told it is paid, and that money is not final any more
    MARKED = "marked"  # the merchant decided, overriding the chain


# Watched past its monitoring window: money in flight, or a payment the network took back.
ALWAYS_WATCHED_STATUS = Status.PROCESSING
ALWAYS_WATCHED_EXCEPTION = Exc.REVERTED

# Message ids (shop.i18n.N_): the customer's page translates them, the admin shows them as is.
STATUS_LABELS: dict[Status, str] = {
    Status.NEW: N_("Waiting for your payment"),
    Status.PROCESSING: N_("Payment seen, waiting for confirmation"),
    Status.SETTLED: N_("Paid"),
    Status.EXPIRED: N_("Expired: no payment arrived in time"),
    Status.INVALID: N_("The payment we saw was replaced or cancelled; please pay again"),
}
EXCEPTION_LABELS: dict[Exc, str] = {
    Exc.PARTIAL: N_("Partly paid: please send the rest to the same address"),
    Exc.OVER: N_("Paid (more than the amount due; the shop will be in touch)"),
    Exc.LATE: N_("Paid after the invoice expired; the shop will check it"),
    Exc.REVERTED: N_("The confirmed payment was undone by the network; the shop will be in touch"),
}


def label(status: Status, exception: Exc) -> str:
    if exception == Exc.PARTIAL and status == Status.EXPIRED:
        return N_("Expired with only part of the amount paid; the shop will be in touch")
    if exception == Exc.REVERTED and status == Status.PROCESSING:
        return N_(
            "The network undid the confirmation of your payment; it is waiting to be "
            "confirmed again"
        )
    if exception == Exc.MARKED:
        return STATUS_LABELS[status] if status == Status.SETTLED else N_("Cancelled by the shop")
    return EXCEPTION_LABELS.get(exception) or STATUS_LABELS[status]


class InvoiceError(Exception):
    """Base of every named invoice error."""


class CannotMark(InvoiceError):
    """The merchant's decision does not fit the invoice as it stands."""


class BitcoinUnavailable(InvoiceError):
    """No usable exchange rate: Bitcoin checkout pauses, card checkout goes on."""

    def __init__(self) -> None:
        super().__init__(
            _l(
                "Bitcoin payment is temporarily unavailable (no current exchange "
                "rate). Please try again in a few minutes or choose another payment "
                "method."
            )
        )


class OrderNotPayable(InvoiceError):
    def __init__(self, status: str):
        super().__init__(
            _l(
                "This order cannot be paid now (%(status)s).",
                status=_l(LABELS[OrderStatus(status)]),
            )
        )


# ---------------------------------------------------------------- creating


def get_invoice(session: Session, order_id: int) -> BitcoinInvoice | None:
    return session.scalar(select(BitcoinInvoice).where(BitcoinInvoice.order_id == order_id))


def create_invoice(
    session: Session,
    order: Order,
    descriptor: WatchOnlyDescriptor,
    policy: BitcoinPolicy,
    rate: LockedRate | None,
    now: datetime | None = None,
    simulated: bool = False,
) -> BitcoinInvoice:
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
        order_id=order.id,
        descriptor_fingerprint=fingerprint,
        derivation_index=index,
        address=address,
        script_pubkey=script,
        amount_sats=amount,
        order_total=covers,
        currency=order.currency,
        rate=format(locked.fiat_per_btc, "f"),
        rate_quote_id=locked.quote_id,
        status=Status.NEW.value,
        created_at=now,
        expires_at=now + policy.payment_window,
        monitor_until=now + policy.payment_window + policy.late_window,
        paid_reported=False,
        received_sats=0,
        confirmed_sats=0,
        credited_sats=0,
        simulated=simulated,
        exception="",
        marked="",
        mark_reason="",
        revision=0,
        flags="",
    )
    session.add(invoice)
    session.add(
        BitcoinInvoiceEvent(
            invoice=invoice,
            at=now,
            from_state="",
            to_state="new",
            note=f"Invoice for {amount} sats to address #{index}",
        )
    )
    # The customer may pay until the invoice expires: the stock must not go back before.
    orders.extend_reservation(
        session,
        order,
        invoice.expires_at,
        "Stock held while the Bitcoin payment request is open",
        now,
    )
    session.flush()
    return invoice


def _next_index(session: Session, fingerprint: str) -> int:
    session.execute(
        insert_for(session, BitcoinIndexCounter)
        .values(descriptor_fingerprint=fingerprint, next_index=0)
        .on_conflict_do_nothing(index_elements=["descriptor_fingerprint"])
    )
    taken = session.execute(
        update(BitcoinIndexCounter)
        .where(BitcoinIndexCounter.descriptor_fingerprint == fingerprint)
        .values(next_index=BitcoinIndexCounter.next_index + 1)
        .returning(BitcoinIndexCounter.next_index)
    ).scalar_one()
    return taken - 1


def last_used_query(fingerprint: str):
    # Answered from the partial index ix_bitcoin_invoices_received (received_sats > 0).
    return (
        select(BitcoinInvoice.derivation_index)
        .where(
            BitcoinInvoice.descriptor_fingerprint == fingerprint, BitcoinInvoice.received_sats > 0
        )
        .order_by(BitcoinInvoice.derivation_index.desc())
        .limit(1)
    )


def address_gap(session: Session, fingerprint: str) -> int:
    """Handed-out addresses after the last one that received anything.

    A wallet stops looking after its gap limit (often 20) of unused addresses in a row; past
    that, the merchant's wallet will not show funds that did arrive until its limit is raised.
    """
    last_used = session.scalar(last_used_query(fingerprint))
    highest = session.scalar(
        select(BitcoinInvoice.derivation_index)
        .where(BitcoinInvoice.descriptor_fingerprint == fingerprint)
        .order_by(BitcoinInvoice.derivation_index.desc())
        .limit(1)
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


def record_output(
    session: Session,
    invoice: BitcoinInvoice,
    output: Output,
    *,
    spends: str,
    now: datetime,
    block_hash: str | None = None,
    height: int | None = None,
    unconfirmed_parents: bool = True,
) -> BitcoinPayment:
    """Remember an output paying `invoice` (idempotent by outpoint)."""
    # The unique outpoint column guards against a second row; this lookup avoids trying.
    payment = next((p for p in invoice.payments if p.outpoint == output.outpoint), None)
    if payment is None:
        payment = BitcoinPayment(
            invoice=invoice,
            outpoint=output.outpoint,
            txid=output.txid,
            amount_sats=output.sats,
            status="mempool",
            spends=spends,
            unconfirmed_parents=unconfirmed_parents,
            conflict_seen=False,
            first_seen_at=now,
        )
        session.add(payment)
    if block_hash is not None:
        confirm_payment(payment, block_hash, height, now)
    elif payment.status == "removed":
        # Back in the mempool (a reorg returned it, or it was rebroadcast).
        payment.status, payment.removed_at = "mempool", None
        payment.unconfirmed_parents = unconfirmed_parents
    return payment


def confirm_payment(
    payment: BitcoinPayment, block_hash: str, height: int | None, now: datetime
) -> None:
    payment.status, payment.block_hash, payment.block_height = "confirmed", block_hash, height
    payment.removed_at = None
    if payment.confirmed_at is None:
        payment.confirmed_at = now


def unconfirm_payment(payment: BitcoinPayment) -> None:
    """Its block left the chain; the watcher decides next whether it is back in the mempool."""
    payment.status, payment.block_hash, payment.block_height = "mempool", None, None
    payment.confirmed_at = None


def remove_payment(payment: BitcoinPayment, now: datetime, conflict: bool = False) -> None:
    payment.status, payment.removed_at = "removed", now
    payment.block_hash = payment.block_height = None
    payment.conflict_seen = payment.conflict_seen or conflict


# ---------------------------------------------------------------- the decision (pure)


@dataclass(frozen=True)
class PaymentFacts:
    txid: str
    sats: int
    status: str  # "mempool", "confirmed" (in the active chain) or "removed"
    height: int | None
    first_seen_at: datetime
    unconfirmed_parents: bool = False
    conflict_seen: bool = False


@dataclass(frozen=True)
class InvoiceFacts:
    amount_sats: int
    expires_at: datetime
    paid_reported: bool  # the order was told it is paid
    marked: str = ""  # the merchant's decision: "", "settled" or "invalid"


@dataclass(frozen=True)
class Decision:
    status: Status
    exception: Exc
    received: int  # every output still counting: in the active chain or in the mempool
    confirmed: int  # in the active chain, at any depth
    credited: int  # final as the policy wants (deep enough, or an accepted zero-conf payment)
    over_by: int  # confirmed beyond the amount due
    late: bool  # the amount was only reached after the invoice expired
    zero_conf: bool  # credited on the strength of an unconfirmed transaction


def decide(
    invoice: InvoiceFacts,
    payments: list[PaymentFacts],
    tip_height: int | None,
    now: datetime,
    policy: BitcoinPolicy,
) -> Decision:
    """The invoice as a function of the node's current view: no database, no I/O.

    `payments` are what the watcher recorded: removed ones (replaced, conflicted, reorged out
    and not back) never count; the others count once each, whatever happened before.
    """
    due = invoice.amount_sats
    enough = due - policy.tolerance_for(due)
    live = sorted(
        (p for p in payments if p.status != "removed"), key=lambda p: (p.first_seen_at, p.txid)
    )
    received = confirmed = deep = 0
    late = False
    for p in live:
        if received < enough <= received + p.sats:
            late = p.first_seen_at > invoice.expires_at
        received += p.sats
        if p.status == "confirmed":
            confirmed += p.sats
            depth = (
                (tip_height - p.height + 1)
                if (tip_height is not None and p.height is not None)
                else 1
            )
            if depth >= policy.confirmations:
                deep += p.sats
    credited, zero_conf = deep, False
    if deep < enough and _zero_conf_ok(invoice, payments, live, deep, enough, now, policy):
        credited, zero_conf = received, True
    over_by = max(0, confirmed - due)

    if invoice.marked == "settled":
        return Decision(
            Status.SETTLED, Exc.MARKED, received, confirmed, credited, over_by, late, zero_conf
        )
    if invoice.marked == "invalid":
        return Decision(
            Status.INVALID, Exc.MARKED, received, confirmed, credited, over_by, late, zero_conf
        )
    if credited >= enough:
        exception = Exc.LATE if late else (Exc.OVER if over_by else Exc.NONE)
        status = Status.SETTLED
    elif received >= enough:
        status = Status.PROCESSING
        exception = Exc.REVERTED if invoice.paid_reported else Exc.NONE
    elif invoice.paid_reported:
        status, exception = Status.INVALID, Exc.REVERTED
    else:
        exception = Exc.PARTIAL if received else Exc.NONE
        if not received and any(p.status == "removed" for p in payments):
            status = Status.INVALID
        elif now >= invoice.expires_at:
            status = Status.EXPIRED
        else:
            status = Status.NEW
    return Decision(status, exception, received, confirmed, credited, over_by, late, zero_conf)


def _zero_conf_ok(
    invoice: InvoiceFacts,
    payments: list[PaymentFacts],
    live: list[PaymentFacts],
    deep: int,
    enough: int,
    now: datetime,
    policy: BitcoinPolicy,
) -> bool:
    """Accept unconfirmed money only when a double spend is as unlikely as it can be made.

    Under full-RBF (Core >= 28 by default) any unconfirmed transaction can be replaced, signal
    or not; what is left to check: one transaction pays it all, spends only confirmed coins,
    nobody has tried a conflicting spend that we saw, and it has stayed in the mempool for the
    settling time (a replacement usually follows within seconds).
    """
    if not policy.zero_conf_max_sats or invoice.amount_sats > policy.zero_conf_max_sats:
        return False
    if deep or any(p.conflict_seen for p in payments):
        return False
    unconfirmed = [p for p in live if p.status == "mempool"]
    if not unconfirmed or len({p.txid for p in unconfirmed}) != 1:
        return False
    if sum(p.sats for p in live) < enough or len(unconfirmed) != len(live):
        return False
    return all(
        not p.unconfirmed_parents and now - p.first_seen_at >= policy.zero_conf_settle
        for p in unconfirmed
    )


def flags(invoice: InvoiceFacts, decision: Decision, now: datetime) -> list[str]:
    """The lines the merchant must act on, as this decision justifies them (pure)."""
    due = invoice.amount_sats
    d = decision
    out: list[str] = []
    if d.exception == Exc.MARKED:
        if d.status == Status.INVALID and d.confirmed:
            out.append(
                f"{d.confirmed} sats arrived for a Bitcoin payment you marked invalid: "
                "refund them (the customer's refund address, or ask)."
            )
        return out
    if d.status == Status.SETTLED:
        if d.late:
            out.append(
                f"Bitcoin payment arrived after the invoice expired "
                f"({invoice.expires_at:%Y-%m-%d %H:%M} UTC); the rate was locked only "
                "until then: check before shipping."
            )
        if d.over_by:
            out.append(
                f"Overpaid by {d.over_by} sats ({d.confirmed} confirmed for {due}): "
                "refund the difference."
            )
    elif d.exception == Exc.REVERTED:
        out.append(
            f"Bitcoin payment reverted by a chain reorganisation or double spend "
            f"({d.credited} of {due} sats still settled): do not ship until it "
            "confirms again."
        )
    elif d.exception == Exc.PARTIAL and d.status == Status.EXPIRED:
        out.append(
            f"Underpaid: {d.received} of {due} sats received by the deadline; refund "
            "or ask for the rest."
        )
    return out


# ---------------------------------------------------------------- applying it


def facts(invoice: BitcoinInvoice) -> tuple[InvoiceFacts, list[PaymentFacts]]:
    return (
        InvoiceFacts(
            invoice.amount_sats, invoice.expires_at, invoice.paid_reported, invoice.marked
        ),
        [
            PaymentFacts(
                p.txid,
                p.amount_sats,
                p.status,
                p.block_height,
                p.first_seen_at,
                p.unconfirmed_parents,
                p.conflict_seen,
            )
            for p in invoice.payments
        ],
    )


def evaluate(
    session: Session,
    invoice: BitcoinInvoice,
    tip_height: int | None,
    policy: BitcoinPolicy,
    now: datetime | None = None,
) -> list[PaymentEvent]:
    """Bring the invoice in line with what the node shows; tell the order what changed.

    Idempotent: the events' keys carry the invoice's revision, bumped in the same transaction,
    so judging the same view again (a replay after a crash, the next poll) says nothing new.
    Returns the events applied.
    """
    now = now or utcnow()
    invoice_facts, payment_facts = facts(invoice)
    d = decide(invoice_facts, payment_facts, tip_height, now, policy)
    before = (Status(invoice.status), Exc(invoice.exception))
    invoice.received_sats, invoice.confirmed_sats = d.received, d.confirmed
    invoice.credited_sats = d.credited
    order = session.get(Order, invoice.order_id)
    assert order is not None
    events: list[PaymentEvent] = []

    def event(
        kind: PaymentEventKind,
        key: str,
        note: str,
        amount: int = 0,
        reference: str = invoice.address,
    ) -> None:
        events.append(
            PaymentEvent(
                provider=PROVIDER,
                key=f"{invoice.id}:{key}",
                order_ref=order.ref,
                kind=kind,
                amount=amount,
                currency=order.currency,
                reference=reference,
                note=note,
            )
        )

    changed = before != (d.status, d.exception)
    if changed:
        _record_change(session, invoice, before, d, now)
    rev = invoice.revision
    if d.status == Status.SETTLED and not invoice.paid_reported:
        invoice.paid_reported = True
        how = (
            f"Marked paid by the merchant: {invoice.mark_reason}"
            if d.exception == Exc.MARKED
            else f"Paid in bitcoin: {d.credited} sats to {invoice.address}"
            + (" (accepted unconfirmed)" if d.zero_conf else "")
        )
        # The books say that a person decided, not why: a free-text reason may name someone,
        # and the ledger outlives every personal datum (the order's history keeps the reason).
        event(
            PaymentEventKind.PAID,
            "paid",
            how,
            amount=invoice.order_total,
            reference=invoice.address
            + (" (marked settled by the merchant)" if d.exception == Exc.MARKED else ""),
        )
    elif changed and d.status == Status.SETTLED and before[1] == Exc.REVERTED:
        event(
            PaymentEventKind.PENDING,
            f"r{rev}:settled-again",
            f"The reverted bitcoin payment is confirmed again ({d.credited} of "
            f"{invoice.amount_sats} sats final).",
        )
    _hold_or_give_up_stock(session, invoice, order, d, now)
    for p in invoice.payments:
        if p.status == "removed":
            event(
                PaymentEventKind.PENDING,
                f"{p.outpoint}:removed",
                f"Bitcoin payment {p.outpoint} was replaced, double-spent or reorganised "
                "away; it does not count.",
            )
        elif d.status != Status.SETTLED:  # once settled, the PAID note says it all
            event(
                PaymentEventKind.PENDING,
                f"{p.outpoint}:seen",
                f"Bitcoin payment of {p.amount_sats} sats seen "
                f"({'in a block' if p.status == 'confirmed' else 'unconfirmed'})",
            )
    wanted = flags(invoice_facts, d, now)
    raised = [line for line in invoice.flags.split("\n") if line]
    if wanted != raised:
        invoice.revision += 1
        rev = invoice.revision
        for i, line in enumerate(x for x in raised if x not in wanted):
            event(PaymentEventKind.WITHDRAWN, f"r{rev}:withdraw:{i}", line)
        for i, line in enumerate(x for x in wanted if x not in raised):
            event(PaymentEventKind.ATTENTION, f"r{rev}:flag:{i}", line)
        invoice.flags = "\n".join(wanted)
    events = _not_said_yet(session, events)
    for e in events:
        orders.apply_payment_event(session, e, now)
    return events


def _record_change(
    session: Session,
    invoice: BitcoinInvoice,
    before: tuple[Status, Exc],
    d: Decision,
    now: datetime,
) -> None:
    """The invoice takes the status decided; its history says what the chain showed."""
    invoice.revision += 1
    invoice.status, invoice.exception = d.status.value, d.exception.value
    if d.status == Status.SETTLED and invoice.settled_at is None:
        invoice.settled_at = now
    session.add(
        BitcoinInvoiceEvent(
            invoice=invoice,
            at=now,
            from_state=_state_text(*before),
            to_state=_state_text(d.status, d.exception),
            note=(
                f"{d.received} of {invoice.amount_sats} sats received, {d.confirmed} in the "
                f"chain, {d.credited} final" + (" (accepted unconfirmed)" if d.zero_conf else "")
            )[:500],
        )
    )


def _hold_or_give_up_stock(
    session: Session, invoice: BitcoinInvoice, order: Order, d: Decision, now: datetime
) -> None:
    """An unpaid order keeps its stock while its payment confirms, and lets it go when the
    merchant marks the payment invalid."""
    if order.state != OrderStatus.PENDING_PAYMENT:
        return
    if d.status == Status.PROCESSING:
        # Paid but not yet final: a slow confirmation must not release the stock.
        orders.extend_reservation(
            session,
            order,
            max(invoice.monitor_until, now),
            "Stock held until the Bitcoin payment confirms",
            now,
        )
    elif d.status == Status.INVALID and d.exception == Exc.MARKED:
        orders.cancel(
            session,
            order,
            f"Bitcoin payment marked invalid by the merchant: {invoice.mark_reason}",
            now,
        )


def _not_said_yet(session: Session, events: list[PaymentEvent]) -> list[PaymentEvent]:
    """Most re-evaluations repeat what was already said: drop the repeatable notes already
    recorded, without a failed insert each."""
    repeatable = [e.key for e in events if e.kind == PaymentEventKind.PENDING]
    if not repeatable:
        return events
    known = set(
        session.scalars(
            select(PaymentRecord.key).where(
                PaymentRecord.provider == PROVIDER, PaymentRecord.key.in_(repeatable)
            )
        )
    )
    return [e for e in events if e.key not in known]


def _state_text(status: Status, exception: Exc) -> str:
    return f"{status.value}/{exception.value}" if exception else status.value


def mark(
    session: Session,
    invoice: BitcoinInvoice,
    decision: str,
    reason: str,
    policy: BitcoinPolicy,
    tip_height: int | None,
    now: datetime | None = None,
) -> None:
    """The merchant decides what the chain cannot: settle it anyway, or give up on it.

    "settled": the order is paid (and the sale booked) with the reason as its note. "invalid":
    an unpaid order is cancelled and its stock released. Either is final for the watcher.
    """
    now = now or utcnow()
    reason = " ".join(reason.split())[:300]
    if decision not in ("settled", "invalid"):
        raise CannotMark("Choose to mark the payment settled or invalid.")
    if not reason:
        raise CannotMark("Say why: the reason goes into the order's history and the books.")
    if invoice.marked:
        raise CannotMark(f"This payment was already marked {invoice.marked}.")
    if Status(invoice.status) == Status.SETTLED and Exc(invoice.exception) != Exc.REVERTED:
        raise CannotMark("This payment is settled by the network already.")
    if decision == "invalid" and invoice.paid_reported:
        raise CannotMark(
            "The order was already paid with this payment: refund or cancel the "
            "order instead, so the books show what happened."
        )
    invoice.marked, invoice.mark_reason = decision, reason
    evaluate(session, invoice, tip_height, policy, now)


def expire_invoices(
    session: Session, policy: BitcoinPolicy, now: datetime | None = None, limit: int = 1000
) -> int:
    """Time-only changes (no node needed): unpaid invoices past their window become expired
    (and flagged when partly paid). Safe to run from several workers at once."""
    now = now or utcnow()
    stmt = (
        select(BitcoinInvoice)
        .where(BitcoinInvoice.status == Status.NEW.value, BitcoinInvoice.expires_at <= now)
        .order_by(BitcoinInvoice.expires_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    count = 0
    for invoice in session.scalars(stmt):
        before = invoice.status
        evaluate(session, invoice, None if invoice.simulated else tip_height(session), policy, now)
        count += int(invoice.status != before)
    return count


def tip_height(session: Session) -> int | None:
    return session.scalar(select(BitcoinBlock.height).order_by(BitcoinBlock.height.desc()).limit(1))


def btc_text(sats: int) -> str:
    """8-decimal BTC text from integer sats, exact (no floats): 123456 -> '0.00123456'."""
    whole, frac = divmod(sats, SATS_PER_BTC)
    return f"{whole}.{frac:08d}"


def bip21_uri(invoice: BitcoinInvoice, extra: dict[str, str] | None = None) -> str:
    # Only address and amount (and what other methods add, such as `lightning=`): a label or
    # message would tell the payer's wallet (and anyone reading its backups) which shop this
    # was for.
    query = {"amount": btc_text(remaining_sats(invoice)), **(extra or {})}
    return f"bitcoin:{invoice.address}?" + urlencode(query, safe=":")


def remaining_sats(invoice: BitcoinInvoice) -> int:
    return max(invoice.amount_sats - invoice.received_sats, 0)
