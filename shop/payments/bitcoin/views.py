"""The Bitcoin payment page: thin views over the invoice service."""

from __future__ import annotations

import io

import segno
from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError

from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import OrderStatus
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.method import BitcoinPayment
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.web.context import db_session, payment_methods

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


def qr_svg(data: str) -> Markup:
    """The QR code as inline SVG: presentation attributes only, no style attribute (CSP)."""
    out = io.BytesIO()
    segno.make(data, error="m").save(
        out, kind="svg", xmldecl=False, svgns=True, nl=False, scale=5, border=4,
        dark="#000", light="#fff", svgclass="qr", lineclass=None, omitsize=False,
        title=_("QR code of the payment request"),
    )
    return Markup(out.getvalue().decode())


@bp.get("/<token>/bitcoin")
def page(token: str):
    method = _method()
    order = _order(token)
    session = db_session()
    invoice = inv.get_invoice(session, order.id)
    now = utcnow()
    if invoice is None:
        return redirect(url_for("orders.show", token=token), 303)
    status, exception = inv.Status(invoice.status), inv.Exc(invoice.exception)
    settled = status == inv.Status.SETTLED
    open_ = status in (inv.Status.NEW, inv.Status.PROCESSING)
    final = settled or order.state != OrderStatus.PENDING_PAYMENT and not open_
    delayed = method.detection_delayed(session, now)
    uri = inv.bip21_uri(invoice)
    seconds_left = max(0, int((invoice.expires_at - now).total_seconds()))
    # Without JavaScript the page follows the payment by reloading itself. WCAG 2.2.1 asks that
    # a customer can turn such timing off: "?updates=off" serves the page without it.
    updates_off = request.args.get("updates") == "off"
    return render_template(
        "payments/bitcoin_page.html", order=order, invoice=invoice, status=status,
        exception=exception, state_label=_(inv.label(status, exception)), uri=uri, qr=qr_svg(uri),
        btc=inv.btc_text(inv.remaining_sats(invoice)), remaining=inv.remaining_sats(invoice),
        total_btc=inv.btc_text(invoice.amount_sats), seconds_left=seconds_left,
        minutes_left=(seconds_left + 59) // 60, delayed=delayed, simulated=invoice.simulated,
        refresh=None if final or updates_off else (REFRESH_WAITING if delayed else REFRESH_OPEN),
        updates_off=updates_off and not final,
        S=inv.Status, E=inv.Exc, settled=settled,
        demo_rate=invoice.simulated and invoice.rate_quote_id is None and invoice.currency != "BTC",
    )


@bp.post("/<token>/bitcoin")
def create(token: str):
    method = _method()
    order = _order(token)
    session = db_session()
    try:
        inv.create_invoice(session, order, method.descriptor, method.policy,
                           method.rate(session, utcnow()), simulated=method.simulated)
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
    from shop.payments.bitcoin.simulated import SimulationError, simulate_payment

    try:
        with session.begin_nested():
            simulate_payment(session, invoice, method.policy, utcnow())
    except SimulationError as exc:
        flash(str(exc), "warning")
    except IntegrityError:
        # Another simulated block took this height a moment ago.
        flash(_("The simulated network was busy; please press the button again."), "warning")
    else:
        flash(_("Simulated payment sent and confirmed in a simulated block (no real money)."),
              "success")
    return redirect(url_for("bitcoin.page", token=token), 303)

