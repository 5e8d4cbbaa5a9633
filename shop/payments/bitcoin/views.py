"""The Bitcoin payment page: thin views over the invoice service."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import PAID_STATES, OrderStatus
from shop.orders.views import order_view
from shop.payments.base import bip21_parts
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.method import BitcoinPayment
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.simulated import SimulationError, simulate_payment
from shop.web.context import db_session, payment_methods
from shop.web.qr import qr_svg

bp = Blueprint("bitcoin", __name__, url_prefix="/orders")

# Seconds between the page's own reloads while something may still change.
REFRESH_OPEN = 10
REFRESH_WAITING = 30


@bp.record_once
def _attach(state) -> None:
    app: Flask = state.app
    method = app.extensions["shop.payment_methods"].get("bitcoin")
    if isinstance(method, BitcoinPayment):
        method.database = app.extensions["shop.db"]

    @app.template_global("bitcoin_invoice")
    def bitcoin_invoice(order: Order) -> BitcoinInvoice | None:
        return inv.get_invoice(db_session(), order.id)


def _method() -> BitcoinPayment:
    method = payment_methods().get("bitcoin")
    if not isinstance(method, BitcoinPayment) or not method.configured:
        abort(404)
    return method


def _order(token: str) -> Order:
    order = orders.get_by_token(db_session(), token)
    if order is None or order.payment_method != "bitcoin":
        abort(404)
    return order


def _state(method: BitcoinPayment, order: Order, invoice: BitcoinInvoice) -> dict:
    """What the page shows and the status endpoint reports, computed once for both."""
    session = db_session()
    now = utcnow()
    status, exception = inv.Status(invoice.status), inv.Exc(invoice.exception)
    settled = status == inv.Status.SETTLED
    open_ = status in (inv.Status.NEW, inv.Status.PROCESSING)
    paid_otherwise = not settled and order.state in PAID_STATES
    final = settled or paid_otherwise or order.state != OrderStatus.PENDING_PAYMENT and not open_
    delayed = method.detection_delayed(session, now)
    seconds_left = max(0, int((invoice.expires_at - now).total_seconds()))
    return dict(
        status=status,
        exception=exception,
        state_label=_(inv.label(status, exception)),
        settled=settled,
        final=final,
        paid_otherwise=paid_otherwise,
        delayed=delayed,
        seconds_left=seconds_left,
        remaining=inv.remaining_sats(invoice),
        btc=inv.btc_text(inv.remaining_sats(invoice)),
        refresh=None if final else (REFRESH_WAITING if delayed else REFRESH_OPEN),
    )


@bp.get("/<token>/bitcoin")
def page(token: str):
    method = _method()
    order = _order(token)
    invoice = inv.get_invoice(db_session(), order.id)
    if invoice is None:
        return redirect(url_for("orders.show", token=token), 303)
    state = _state(method, order, invoice)
    parts = []
    if (
        state["status"] == inv.Status.NEW
        and invoice.received_sats == 0
        and state["seconds_left"] > 0
        and order.state == OrderStatus.PENDING_PAYMENT
    ):
        # Other methods ride along in the same request (Lightning: `lightning=<bolt11>`), for
        # the same amount and deadline; paying either way settles the order. Only the page
        # asks, never the status endpoint the script polls.
        parts = bip21_parts(
            payment_methods(),
            order_view(order),
            invoice.amount_sats,
            invoice.order_total,
            invoice.rate,
            invoice.expires_at,
        )
    uri = inv.bip21_uri(invoice, {p.param: p.value for p in parts if p.value})
    # Without JavaScript the page follows the payment by reloading itself; with it, bitcoin.js
    # asks the status endpoint and updates the page in place. WCAG 2.2.1 asks that a customer
    # can turn such timing off: "?updates=off" serves the page without either.
    updates_off = request.args.get("updates") == "off"
    if updates_off:
        state["refresh"] = None
    return render_template(
        "payments/bitcoin_page.html",
        order=order,
        invoice=invoice,
        uri=uri,
        qr=qr_svg(uri),
        total_btc=inv.btc_text(invoice.amount_sats),
        minutes_left=(state["seconds_left"] + 59) // 60,
        simulated=invoice.simulated,
        updates_off=updates_off and not state["final"],
        parts=parts,
        S=inv.Status,
        E=inv.Exc,
        **state,
        demo_rate=invoice.simulated and invoice.rate_quote_id is None and invoice.currency != "BTC",
    )


@bp.get("/<token>/bitcoin/status.json")
def status(token: str):
    """The payment's state for the page's script: nothing the page does not show already."""
    method = _method()
    order = _order(token)
    invoice = inv.get_invoice(db_session(), order.id)
    if invoice is None:
        abort(404)
    state = _state(method, order, invoice)
    response = jsonify(
        status=state["status"].value,
        exception=state["exception"].value,
        state_label=state["state_label"],
        final=state["final"],
        settled=state["settled"],
        delayed=state["delayed"],
        remaining_sats=state["remaining"],
        btc=state["btc"],
        received_sats=invoice.received_sats,
        seconds_left=state["seconds_left"],
        refresh=state["refresh"],
        order_url=url_for("orders.show", token=token),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<token>/bitcoin")
def create(token: str):
    method = _method()
    order = _order(token)
    session = db_session()
    try:
        inv.create_invoice(
            session,
            order,
            method.descriptor,
            method.policy,
            method.rate(session, utcnow()),
            simulated=method.simulated,
        )
    except inv.BitcoinUnavailable as exc:
        flash(str(exc), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    except inv.OrderNotPayable as exc:
        flash(str(exc), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    return redirect(url_for("bitcoin.page", token=token), 303)


@bp.post("/<token>/bitcoin/simulate")
def simulate(token: str):
    method = _method()
    if not method.simulated:
        abort(404)
    order = _order(token)
    session = db_session()
    invoice = inv.get_invoice(session, order.id)
    if invoice is None or not invoice.simulated:
        abort(404)
    try:
        with session.begin_nested():
            simulate_payment(session, invoice, method.policy, utcnow())
    except SimulationError as exc:
        flash(str(exc), "warning")
    except IntegrityError:
        # Another simulated block took this height a moment ago.
        flash(_("The simulated network was busy; please press the button again."), "warning")
    else:
        flash(
            _("Simulated payment sent and confirmed in a simulated block (no real money)."),
            "success",
        )
    return redirect(url_for("bitcoin.page", token=token), 303)
