"""Scheduled erasure of personal data, and of ledger entries past the fiscal period.

When an order's personal data may go (see ``erasure_due_at``), every registered *eraser* runs
for it and ``orders.personal_data_erased_at`` is stamped. The built-in eraser destroys the
order's wrapped data key and encrypted contact fields. Other features that keep personal data
per order (a refund address, a card holder's name from a provider, ...) register their own:

    def erase_refund_addresses(session, order_ids) -> int:   # never commits; rows erased
        ...

and, when an order must be kept longer than its status says (an open dispute, a refund not
yet sent), a *hold*: ``@register_hold("stripe-disputes") def held(session, order_ids) ->
set[int]``. Register them in shop/subscribers.py (``ERASERS``), which every app connects, not
at import time of some module: what an entry point happens to import must not decide what the
purge erases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import Database, rowcount, utcnow
from shop.i18n import N_, Text
from shop.i18n import lazy_gettext as _l
from shop.orders.models import Order, OrderContact, OrderEvent
from shop.orders.states import OrderStatus
from shop.privacy import epochs, ledger
from shop.privacy.keys import session_settings
from shop.privacy.models import KeyEpoch, PrivacyJobRun
from shop.privacy.store import erase_contacts, move_into_epochs

S = OrderStatus

Eraser = Callable[[Session, Sequence[int]], int]
Hold = Callable[[Session, Sequence[int]], set[int]]

_ERASERS: dict[str, Eraser] = {}
_HOLDS: dict[str, Hold] = {}


def register_eraser(name: str, fn: Eraser | None = None):
    """Add ``fn(session, order_ids) -> int`` to what the purge runs (usable as a decorator)."""

    def add(f: Eraser) -> Eraser:
        _ERASERS[name] = f
        return f

    return add(fn) if fn is not None else add


def register_hold(name: str, fn: Hold | None = None):
    """Add ``fn(session, order_ids) -> ids still needed``; held orders keep their data."""

    def add(f: Hold) -> Hold:
        _HOLDS[name] = f
        return f

    return add(fn) if fn is not None else add


def erasers() -> dict[str, Eraser]:
    return dict(_ERASERS)


register_eraser("order-contacts", lambda session, ids: erase_contacts(session, list(ids)))


# ---------------------------------------------------------------- when

# Statuses in which nothing more can happen that needs the customer's details.
ENDED_UNPAID = frozenset({S.EXPIRED, S.CANCELLED})
ENDED_SOLD = frozenset({S.FULFILLED, S.CLOSED, S.REFUNDED})
CANDIDATES = ENDED_UNPAID | ENDED_SOLD | {S.PARTIALLY_REFUNDED}


@dataclass(frozen=True)
class Verdict:
    """``due_at`` is when the data may go; None while the order still needs it (``why``)."""

    due_at: datetime | None
    why: str


# Message ids: the customer's order page shows them translated, reports as they are.
KEEP_REASONS = {
    S.PENDING_PAYMENT: N_(
        "the order is awaiting payment (if it is not paid, your details are "
        "erased after it has expired)"
    ),
    S.PAID: N_("the order is paid but not yet sent, and your details are needed to deliver it"),
    S.PARTIALLY_REFUNDED: N_(
        "the order is partly refunded and not yet sent, and your details are needed to finish it"
    ),
}
ATTENTION_REASON = N_(
    "the shop is still settling something about this order (a payment, "
    "refund or dispute) and needs your details for it"
)


def _refund_times(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    if not ids:
        return {}
    rows = session.execute(
        select(OrderEvent.order_id, func.max(OrderEvent.at))
        .where(
            OrderEvent.order_id.in_(ids),
            OrderEvent.to_status.in_([S.REFUNDED.value, S.PARTIALLY_REFUNDED.value]),
            OrderEvent.from_status != OrderEvent.to_status,
        )
        .group_by(OrderEvent.order_id)
    ).all()
    return {order_id: at for order_id, at in rows}


def erasure_due_at(
    order: Order, settings: Settings, refunded_at: datetime | None = None, held: bool = False
) -> Verdict:
    if held or order.attention:
        return Verdict(None, ATTENTION_REASON)
    state = order.state
    unpaid = timedelta(hours=settings.retention_unpaid_hours)
    returns = timedelta(days=settings.retention_fulfilled_days)
    if state in ENDED_UNPAID:
        ended = (order.expired_at if state == S.EXPIRED else order.cancelled_at) or order.placed_at
        window, why = unpaid, "unpaid order ended"
    elif state in ENDED_SOLD or (state == S.PARTIALLY_REFUNDED and order.fulfilled_at):
        # The return window runs from fulfilment; a later refund restarts it. Orders closed
        # or refunded without being fulfilled count from when they were settled.
        times = [t for t in (order.fulfilled_at, refunded_at) if t] or [
            t for t in (order.closed_at, order.paid_at, order.placed_at) if t
        ]
        ended = max(times)
        window, why = returns, "return window over"
    elif state == S.PAID and not order.requires_shipping:
        return Verdict(
            None,
            N_(
                "the order is paid but its download is not ready yet, and your "
                "email address is needed to tell you when it is"
            ),
        )
    else:
        return Verdict(None, KEEP_REASONS.get(state, N_("the order is still open")))
    if order.personal_data_erase_requested_at is not None:
        return Verdict(ended, "erasure requested by the customer")
    return Verdict(ended + window, why)


# ---------------------------------------------------------------- purge


@dataclass(frozen=True)
class PurgedOrder:
    order_id: int
    number: str
    status: str
    due_at: datetime
    reason: str


@dataclass
class PurgeReport:
    as_of: datetime
    dry_run: bool
    orders: list[PurgedOrder] = field(default_factory=list)
    erased_rows: dict[str, int] = field(default_factory=dict)
    ledger_entries_deleted: int = 0
    epochs_destroyed: int = 0
    keys_rewrapped: int = 0


def _held(session: Session, ids: Sequence[int]) -> set[int]:
    held: set[int] = set()
    for hold in _HOLDS.values():
        held |= set(hold(session, ids))
    return held


def due_orders(
    session: Session,
    settings: Settings,
    as_of: datetime,
    *,
    lock: bool = False,
    limit: int = 1000,
    after_id: int = 0,
) -> tuple[list[tuple[Order, PurgedOrder]], int]:
    """Orders whose personal data is due at ``as_of``; also the last id looked at (paging)."""
    earliest = as_of - timedelta(hours=settings.retention_unpaid_hours)
    stmt = (
        select(Order)
        .where(
            Order.personal_data_erased_at.is_(None),
            Order.status.in_([s.value for s in CANDIDATES]),
            Order.attention.is_(None),
            Order.id > after_id,
            # Every window ends at least retention_unpaid_hours after the order was placed.
            (Order.placed_at <= earliest) | Order.personal_data_erase_requested_at.is_not(None),
        )
        .order_by(Order.id)
        .limit(limit)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Order)
    orders = session.scalars(stmt).all()
    if not orders:
        return [], after_id
    ids = [o.id for o in orders]
    refunds, held = _refund_times(session, ids), _held(session, ids)
    due = []
    for order in orders:
        verdict = erasure_due_at(order, settings, refunds.get(order.id), order.id in held)
        if verdict.due_at is not None and verdict.due_at <= as_of:
            due.append(
                (
                    order,
                    PurgedOrder(order.id, order.number, order.status, verdict.due_at, verdict.why),
                )
            )
    return due, ids[-1]


def erase_orders(
    session: Session, orders: Sequence[Order], now: datetime, note: str
) -> dict[str, int]:
    """Run every eraser for ``orders`` and stamp them. The caller's scope commits."""
    ids = [o.id for o in orders]
    counts = {name: eraser(session, ids) for name, eraser in _ERASERS.items()}
    for order in orders:
        order.personal_data_erased_at = now
        session.add(
            OrderEvent(
                order_id=order.id,
                at=now,
                from_status=order.status,
                to_status=order.status,
                note=note,
            )
        )
    session.flush()
    return counts


def purge(
    session: Session,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    batch: int = 500,
) -> PurgeReport:
    """Erase what is due at ``as_of`` (default now); with ``dry_run`` only report it."""
    now = now or utcnow()
    as_of = as_of or now
    report = PurgeReport(as_of=as_of, dry_run=dry_run)
    after_id = 0
    while True:
        due, last_id = due_orders(
            session, settings, as_of, lock=not dry_run, limit=batch, after_id=after_id
        )
        if last_id == after_id:
            break
        after_id = last_id
        report.orders += [purged for _, purged in due]
        if due and not dry_run:
            counts = erase_orders(session, [o for o, _ in due], now, "Personal data erased")
            for name, count in counts.items():
                report.erased_rows[name] = report.erased_rows.get(name, 0) + count
    if not dry_run:
        report.epochs_destroyed, report.keys_rewrapped = shred_epochs(session, settings, now)
    years = settings.ledger_retention_years
    if dry_run:
        report.ledger_entries_deleted = ledger.expired_entry_count(session, as_of, years)
    else:
        # The law's retention counts from the real clock: a simulated date (--as-of) may show
        # what would go, but never deletes a bookkeeping record.
        report.ledger_entries_deleted = ledger.delete_expired(session, min(as_of, now), years)
    return report


# An epoch nobody uses may still be about to be used by a checkout that has not committed yet.
EMPTY_EPOCH_GRACE = timedelta(hours=1)
# Where the key of an order whose erase-by date is not known yet (open, paid, held) goes next.
OPEN_ORDER_HOP = timedelta(days=7)


def shred_epochs(session: Session, settings: Settings, now: datetime) -> tuple[int, int]:
    """Destroy every epoch that is due (bucket day come, erasure in it, or unused), after
    moving the keys of orders that still need their data to the epoch of their erase-by day.

    The files go when this transaction commits (``epochs.destroy_after_commit``). Returns
    (epochs destroyed, data keys re-wrapped). Keys from before epochs are moved in first.
    """
    rewrapped = move_into_epochs(session)
    used = exists(
        select(OrderContact.order_id).where(
            OrderContact.key_epoch == KeyEpoch.id, OrderContact.wrapped_key.is_not(None)
        )
    )
    stmt = (
        select(KeyEpoch)
        .where(
            KeyEpoch.destroyed_at.is_(None),
            or_(
                KeyEpoch.bucket <= now.date(),
                KeyEpoch.shred_after <= now,
                (KeyEpoch.created_at <= now - EMPTY_EPOCH_GRACE) & ~used,
            ),
        )
        .order_by(KeyEpoch.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=KeyEpoch)
    doomed = session.scalars(stmt).all()
    leftovers = epochs.leftover_files(session)
    if not doomed:
        epochs.destroy_after_commit(session, leftovers)
        return 0, rewrapped
    doomed_ids = frozenset(e.id for e in doomed)
    members = list(
        session.scalars(
            select(OrderContact.order_id).where(
                OrderContact.key_epoch.in_(doomed_ids), OrderContact.wrapped_key.is_not(None)
            )
        )
    )
    targets: dict[date, list[int]] = {}
    for start in range(0, len(members), 500):
        chunk = members[start : start + 500]
        orders = session.scalars(select(Order).where(Order.id.in_(chunk))).all()
        refunds, held = _refund_times(session, chunk), _held(session, chunk)
        for order in orders:
            due = erasure_due_at(order, settings, refunds.get(order.id), order.id in held).due_at
            bucket = max(
                epochs.bucket_of(due if due is not None else now + OPEN_ORDER_HOP),
                epochs.bucket_of(now),
            )
            targets.setdefault(bucket, []).append(order.id)
    for bucket, ids in targets.items():
        rewrapped += move_into_epochs(session, ids, bucket=bucket, exclude=doomed_ids)
    for epoch in doomed:
        epoch.destroyed_at = now
    session.flush()
    epochs.destroy_after_commit(session, set(doomed_ids) | leftovers)
    return len(doomed), rewrapped


# ---------------------------------------------------------------- the customer's request


@dataclass(frozen=True)
class ErasureOutcome:
    erased: bool
    message: Text


def request_erasure(session: Session, order: Order, now: datetime | None = None) -> ErasureOutcome:
    """Erase now when nothing is pending, otherwise remember the request and say why."""
    now = now or utcnow()
    if order.personal_data_erased_at is not None:
        return ErasureOutcome(True, _l("Your personal data for this order was already erased."))
    settings = session_settings(session)
    refunds = _refund_times(session, [order.id])
    held = order.id in _held(session, [order.id])
    if order.personal_data_erase_requested_at is None:
        order.personal_data_erase_requested_at = now
    verdict = erasure_due_at(order, settings, refunds.get(order.id), held)
    if verdict.due_at is not None and verdict.due_at <= now:
        erase_orders(session, [order], now, "Personal data erased at the customer's request")
        return ErasureOutcome(
            True,
            _l(
                "Your personal data for this order has been erased. The "
                "order itself and its bookkeeping record (no personal "
                "data) remain."
            ),
        )
    session.add(
        OrderEvent(
            order_id=order.id,
            at=now,
            from_status=order.status,
            to_status=order.status,
            note=N_("Erasure of personal data requested"),
        )
    )
    session.flush()
    return ErasureOutcome(
        False,
        _l(
            "Your request is recorded. We cannot erase your details yet: "
            "%(why)s. They will be erased automatically as soon as "
            "that is no longer the case.",
            why=_l(verdict.why),
        ),
    )


def keep_reason(session: Session, order: Order) -> Verdict:
    """Why the order's data is kept and until when (for the order page)."""
    settings = session_settings(session)
    # Only a refund restarts the clock; an order never refunded needs no look at its history.
    refunds = _refund_times(session, [order.id]) if order.amount_refunded else {}
    return erasure_due_at(
        order, settings, refunds.get(order.id), order.id in _held(session, [order.id])
    )


# ---------------------------------------------------------------- the worker's daily run

PURGE_JOB = "purge"
PURGE_INTERVAL = timedelta(days=1)


def claim_run(session: Session, name: str, now: datetime, interval: timedelta) -> bool:
    """True for exactly one caller per ``interval``, across workers (optimistic update)."""
    row = session.get(PrivacyJobRun, name)
    if row is None:
        try:
            with session.begin_nested():
                session.add(PrivacyJobRun(name=name, last_run_at=now))
                session.flush()
        except IntegrityError:
            return False
        return True
    if row.last_run_at > now - interval:
        return False
    result = session.execute(
        update(PrivacyJobRun)
        .where(PrivacyJobRun.name == name, PrivacyJobRun.last_run_at == row.last_run_at)
        .values(last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def daily_purge(database: Database, now: datetime | None = None) -> int:
    """Worker job: purge at most once a day; returns how many orders and entries went."""
    now = now or utcnow()
    with database.job_session() as session:
        if not claim_run(session, PURGE_JOB, now, PURGE_INTERVAL):
            return 0
        report = purge(session, session_settings(session), now=now)
        return len(report.orders) + report.ledger_entries_deleted
