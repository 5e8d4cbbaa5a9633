"""The "lightning" payment method: the merchant's own node, alone or beside on-chain Bitcoin.

Chosen on its own, the order page offers a BOLT11 invoice. When on-chain Bitcoin is offered too,
the Bitcoin payment page asks every method for its BIP21 part (base.bip21_parts) and this
one adds `lightning=<bolt11>` for the same amount and deadline, so one QR code pays either way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import Database, utcnow
from shop.i18n import N_
from shop.jobs.heartbeat import live_workers
from shop.money import BTC
from shop.orders.models import Order
from shop.payments import manual
from shop.payments.base import (
    Availability,
    Bip21Part,
    HealthCheck,
    OrderView,
    Panel,
    PaymentStart,
    Refundable,
    ago,
)
from shop.payments.bitcoin.rates import DEMO_RATE, LockedRate, current_quote, sats_due
from shop.payments.lightning import service
from shop.payments.lightning import settings as ln_settings
from shop.payments.lightning.backend import LightningBackend, LightningError, NodeInfo
from shop.payments.lightning.listener import LightningListener
from shop.payments.lightning.models import LightningInvoice, LightningStreamState

# How long a node's state (reachable, inbound liquidity) is reused before asking again, and how
# long a node that failed is left alone: a page reload must not wait for a dead node each time.
INFO_SECONDS = 30.0
UNREACHABLE = N_("Lightning is unavailable right now (the shop's node cannot be reached).")
NO_LIQUIDITY = N_(
    "Lightning is unavailable for this amount right now (the shop's node "
    "cannot receive that much at the moment)."
)


@dataclass
class LightningPayment:
    settings: Settings
    code: str = "lightning"
    label: str = N_("Lightning")
    description: str = N_(
        "Pay instantly from a Lightning wallet to the shop's own node; no "
        "third party, and no public record linking you to the shop."
    )
    panel_template: str = "payments/lightning.html"
    database: Database | None = None
    _info: tuple[float, NodeInfo | str] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def kind(self) -> str:
        return ln_settings.kind(self.settings)

    @property
    def configured(self) -> bool:
        return bool(self.kind)

    @property
    def simulated(self) -> bool:
        return self.kind == "simulated"

    @cached_property
    def backend(self) -> LightningBackend:
        backend = ln_settings.backend_from(self.settings)
        if backend is None:
            raise RuntimeError("Lightning is not configured")
        return backend

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.settings.bitcoin_payment_window_minutes)

    # -- the node's state, cached --------------------------------------------------------

    def node_info(self) -> NodeInfo | str:
        """The node's state, or why it cannot be reached (cached for INFO_SECONDS)."""
        with self._lock:
            if self._info is not None and time.monotonic() - self._info[0] < INFO_SECONDS:
                return self._info[1]
        try:
            info: NodeInfo | str = self.backend.info()
        except LightningError as exc:
            info = str(exc)
        with self._lock:
            self._info = (time.monotonic(), info)
        return info

    def offer(self, amount_msat: int) -> str:
        """ "" when the node can take `amount_msat` now, else the customer's note."""
        info = self.node_info()
        if isinstance(info, str):
            return UNREACHABLE
        if info.inbound_msat < amount_msat:
            return NO_LIQUIDITY
        return ""

    # -- PaymentMethod --------------------------------------------------------------------

    def availability(self) -> Availability:
        if not self.configured:
            return Availability(
                False,
                "Lightning needs SHOP_LIGHTNING_LND_URL, SHOP_LIGHTNING_CLN_RPC or "
                "SHOP_LIGHTNING_CLN_REST_URL.",
            )
        if self.settings.currency != BTC and not self.simulated and self.database is not None:
            session = self.database.sessionmaker()
            try:
                if self.rate(session, utcnow()) is None:
                    return Availability(
                        False,
                        N_("Lightning is temporarily unavailable (no current exchange rate)."),
                    )
            finally:
                session.close()
        return Availability(True)

    def start(self, order: OrderView) -> PaymentStart:
        return PaymentStart()

    def panel(self, session: Session, order: Order) -> Panel:
        return Panel(template=self.panel_template)

    def cancel(self, database: Database, order_id: int, reason: str) -> None:
        # The invoice expires with its window; a settlement after that is flagged as late.
        manual.cancel(database, order_id, reason)

    def refundable(self, session: Session, order: Order) -> Refundable:
        # The shop never holds spending rights on the node: refunds go out on-chain from the
        # merchant's wallet to an address the customer gives.
        return manual.refundable_on_chain(order)

    def refund(self, database: Database, order_id: int, amount: int, reference: str = "") -> str:
        return manual.record_refund(database, order_id, amount, reference)

    def health(self, session: Session, now: datetime) -> list[HealthCheck]:
        if not self.configured:
            return [
                HealthCheck(
                    "Lightning node",
                    "off",
                    "Lightning is not set up (SHOP_LIGHTNING_LND_URL, SHOP_LIGHTNING_CLN_RPC or "
                    "SHOP_LIGHTNING_CLN_REST_URL).",
                )
            ]
        if self.simulated:
            return [HealthCheck("Lightning node", "ok", "Simulated node of the demo.")]
        details, listening = self._listening(session, now)
        state = session.get(LightningStreamState, self.kind)
        if state is not None:
            details.append(
                f"Payment stream last reached the node {ago(state.last_success_at, now)}."
            )
            if state.last_error:
                details.append(f"Last error {ago(state.last_error_at, now)}: {state.last_error}")
        info = self.node_info()
        if isinstance(info, str):
            return [
                HealthCheck(
                    "Lightning node",
                    "warning",
                    f"{self.kind.upper()} node unreachable: {info}",
                    details,
                )
            ]
        typical = (
            session.scalar(
                select(func.max(LightningInvoice.amount_msat)).where(
                    LightningInvoice.created_at > now - timedelta(days=30)
                )
            )
            or 0
        )
        status = (
            "ok"
            if listening and info.synced and info.inbound_msat >= typical and info.active_channels
            else "warning"
        )
        details.insert(
            0,
            f"{info.active_channels} active channel"
            f"{'s' if info.active_channels != 1 else ''}, block {info.block_height}"
            f"{'' if info.synced else ' (not synced to the chain)'}.",
        )
        if typical:
            details.append(
                f"Largest Lightning invoice in 30 days: {typical // 1000:,} sats"
                + (
                    ""
                    if info.inbound_msat >= typical
                    else " — more than the node can receive now: open or buy inbound liquidity."
                )
            )
        return [
            HealthCheck(
                "Lightning node",
                status,
                f"{self.kind.upper()} reachable, can receive {info.inbound_msat // 1000:,} sats.",
                details,
            )
        ]

    def _listening(self, session: Session, now: datetime) -> tuple[list[str], bool]:
        """Which live worker follows the node (holds the listener's lock and listens)."""
        workers = [
            w
            for w in live_workers(session, self.settings.worker_interval_seconds, now)
            if LightningListener.follows in w.listening.split(",")
        ]
        if not workers:
            return [
                "No running worker listens to the node: Lightning payments are detected once "
                "`shop worker` runs (on PostgreSQL one worker listens, the others stand by)."
            ], False
        return [f"Worker {w.host} (process {w.pid}) listens to the node." for w in workers], True

    # -- prices ---------------------------------------------------------------------------

    def rate(self, session: Session, now: datetime) -> Decimal | None:
        """Fiat per BTC to lock an invoice at, or None (Lightning pauses, as on-chain does)."""
        currency = self.settings.currency
        if currency == BTC:
            return Decimal(1)
        quote = current_quote(
            session, currency, now, getattr(self.settings, "rate_max_age_seconds", 600)
        )
        if quote is not None:
            return quote.fiat_per_btc
        if self.simulated:
            return DEMO_RATE
        return None

    # -- invoices -------------------------------------------------------------------------

    def invoice_for(
        self,
        order: OrderView,
        sats: int,
        covers: int,
        rate: str,
        expires_at: datetime,
        now: datetime | None = None,
        *,
        replaces: int | None = None,
    ) -> LightningInvoice:
        """The order's invoice (made once, or once more to replace the expired invoice number
        `replaces`); raises service.LightningUnavailable."""
        assert self.database is not None
        with self.database.job_session() as session:
            existing = service.get_invoice(session, order.id)
        if (
            existing is not None
            and existing.status not in ("failed", "creating")
            and not (replaces == existing.seq and service.replaceable(existing, now or utcnow()))
        ):
            return existing  # a reload asks the node nothing
        note = self.offer(sats * 1000)
        if note:
            raise service.LightningUnavailable(note)
        try:
            return service.ensure_invoice(
                self.database,
                self.backend,
                service.InvoiceRequest(
                    order_id=order.id,
                    order_ref=order.ref,
                    amount_msat=sats * 1000,
                    order_total=covers,
                    currency=order.currency,
                    rate=rate,
                    description=service.description_for(self.settings.store_name, order.number),
                    expires_at=expires_at,
                ),
                now,
                replaces=replaces,
            )
        except service.NodeFailed as exc:
            # Remembered like an unreachable node: the next reloads do not wait for it again.
            with self._lock:
                self._info = (time.monotonic(), str(exc))
            raise

    def new_invoice(
        self, order: OrderView, now: datetime | None = None, *, replaces: int | None = None
    ) -> LightningInvoice:
        """For an order paid by Lightning alone: amount at the current rate, the usual window.
        With `replaces`, the customer asked for a new invoice in place of that expired one."""
        now = now or utcnow()
        assert self.database is not None
        with self.database.job_session() as session:
            rate = self.rate(session, now)
            paid = session.get(Order, order.id)
            covers = order.total - (paid.amount_paid if paid is not None else 0)
        if rate is None:
            raise service.LightningUnavailable(
                N_("Lightning is temporarily unavailable (no current exchange rate).")
            )
        sats = sats_due(covers, order.currency, LockedRate(rate))
        return self.invoice_for(
            order, sats, covers, format(rate, "f"), now + self.window, now, replaces=replaces
        )

    def bip21_part(
        self, order: OrderView, sats: int, covers: int, rate: str, expires_at: datetime
    ) -> Bip21Part | None:
        if not self.configured or self.database is None:
            return None
        try:
            invoice = self.invoice_for(order, sats, covers, rate, expires_at)
        except service.LightningUnavailable as exc:
            return Bip21Part("lightning", "", N_("Lightning invoice"), note=str(exc))
        if invoice.status != "open" or invoice.expires_at <= utcnow():
            return None
        return Bip21Part(
            "lightning",
            invoice.bolt11,
            N_("Lightning invoice"),
            demo_action=f"/orders/{order.token}/lightning/simulate" if self.simulated else "",
        )
