"""The Lightning payment page (an order paid by Lightning alone) and the demo's button.

Thin: the method and service do the work. No JavaScript needed: the page reloads itself while
the invoice is open (with a way to turn that off), as the Bitcoin page does.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import PAID_STATES, OrderStatus
from shop.orders.views import order_view
from shop.payments.lightning import service
from shop.payments.lightning.method import LightningPayment
from shop.payments.lightning.simulated import SimulatedNode
from shop.web.context import db_session, payment_methods
from shop.web.qr import qr_svg

bp = Blueprint("lightning", __name__, url_prefix="/orders")

REFRESH_OPEN = 5  # seconds; a Lightning payment settles within seconds


@bp.record_once
def _attach(state) -> None:
    app: Flask = state.app
    method = app.extensions["shop.payment_methods"].get("lightning")
    if isinstance(method, LightningPayment):
        method.database = app.extensions["shop.db"]

    @app.template_global("lightning_invoice")
    def lightning_invoice(order: Order):
        return service.get_invoice(db_session(), order.id)

    @app.template_global("lightning_renewable")
    def lightning_renewable(order: Order, invoice) -> bool:
        return _renewable(order, invoice, utcnow())


def _renewable(order: Order, invoice, now) -> bool:
    """The customer may ask for a new invoice: theirs expired unpaid, the order still waits."""
    return (
        invoice is not None
        and service.replaceable(invoice, now)
        and order.state == OrderStatus.PENDING_PAYMENT
    )


def _method() -> LightningPayment:
    method = payment_methods().get("lightning")
    if not isinstance(method, LightningPayment) or not method.configured:
        abort(404)
    return method


def _order(token: str, method: LightningPayment) -> Order:
    order = orders.get_by_token(db_session(), token)
    if order is None or order.payment_method != method.code:
        abort(404)
    return order


@bp.get("/<token>/lightning")
def page(token: str):
    method = _method()
    order = _order(token, method)
    invoice = service.get_invoice(db_session(), order.id)
    if invoice is None or invoice.status in ("creating", "failed"):
        return redirect(url_for("orders.show", token=token), 303)
    now = utcnow()
    settled = invoice.status == "settled"
    # Paid another way: an earlier invoice paid late, or on-chain in a unified request.
    paid_otherwise = not settled and order.state in PAID_STATES
    expired = not settled and not paid_otherwise and invoice.expires_at <= now
    seconds_left = max(0, int((invoice.expires_at - now).total_seconds()))
    updates_off = request.args.get("updates") == "off"
    final = settled or expired or order.state != OrderStatus.PENDING_PAYMENT
    # Upper case: a QR code's alphanumeric mode holds it in fewer modules (BOLT11 allows it).
    uri = f"lightning:{invoice.bolt11}"
    return render_template(
        "payments/lightning_page.html",
        order=order,
        invoice=invoice,
        settled=settled,
        paid_otherwise=paid_otherwise,
        expired=expired,
        # Only on the customer's request, never by a reload: a new invoice at a new rate.
        renewable=expired and _renewable(order, invoice, now),
        uri=uri,
        qr=qr_svg(uri.upper()),
        sats=invoice.amount_msat // 1000,
        minutes_left=(seconds_left + 59) // 60,
        simulated=method.simulated,
        refresh=None if final or updates_off else REFRESH_OPEN,
        updates_off=updates_off and not final,
    )


@bp.post("/<token>/lightning")
def create(token: str):
    method = _method()
    order = _order(token, method)
    if order.state != OrderStatus.PENDING_PAYMENT:
        flash(_("This order is not awaiting payment."), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    view = order_view(order)
    db_session().rollback()  # nothing written; no transaction stays open while the node works
    try:
        method.new_invoice(view)
    except service.LightningUnavailable as exc:
        flash(_(str(exc)), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    return redirect(url_for("lightning.page", token=token), 303)


@bp.post("/<token>/lightning/renew")
def renew(token: str):
    """The customer asks for a new invoice in place of the expired one they saw (its number in
    the form, so a second click or an old tab finds the replacement instead of making another)."""
    method = _method()
    order = _order(token, method)
    replaces = request.form.get("replaces", type=int)
    if replaces is None:
        abort(400)
    if order.state != OrderStatus.PENDING_PAYMENT:
        flash(_("This order is not awaiting payment."), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    view = order_view(order)
    db_session().rollback()  # nothing written; no transaction stays open while the node works
    try:
        method.new_invoice(view, replaces=replaces)
    except service.LightningUnavailable as exc:
        flash(_(str(exc)), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    return redirect(url_for("lightning.page", token=token), 303)


@bp.post("/<token>/lightning/simulate")
def simulate(token: str):
    """Demo only: pretend a wallet paid the order's Lightning invoice (alone or in a unified
    request)."""
    method = _method()
    node = method.backend if method.simulated else None
    if not isinstance(node, SimulatedNode):
        abort(404)
    session = db_session()
    order = orders.get_by_token(session, token)
    invoice = service.get_invoice(session, order.id) if order is not None else None
    if (
        invoice is None
        or invoice.backend != "simulated"
        or invoice.status != "open"
        or invoice.payment_hash is None
    ):
        abort(404)
    settled = node.pay(invoice.payment_hash, invoice.amount_msat, invoice.bolt11)
    service.record_settlement(session, settled, utcnow())
    flash(_("Simulated Lightning payment received (no real money)."), "success")
    return redirect(url_for("orders.show", token=token), 303)
