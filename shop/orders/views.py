from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from wtforms import SubmitField

from shop.admin.orders import shipments
from shop.cart.pricing import PricedLine, compute_totals
from shop.orders import service
from shop.orders.models import Order
from shop.orders.states import LABELS, OrderStatus
from shop.payments.base import OrderView
from shop.payments.demo import DemoPayment
from shop.web.context import db_session, payment_methods
from shop.web.forms import ShopForm

bp = Blueprint("orders", __name__, url_prefix="/orders")


class DemoPayForm(ShopForm):
    submit = SubmitField("Pay now (demo, no real money)")


def order_view(order: Order) -> OrderView:
    return OrderView(
        id=order.id, ref=order.ref, number=order.number, token=order.token, total=order.total,
        currency=order.currency,
        lines=[(l.product_title, l.unit_price, l.quantity) for l in order.lines],
    )


def order_totals(order: Order):
    lines = [
        PricedLine(l.variant_id or 0, "", l.product_title, l.variant_label, l.sku, l.kind,
                   l.unit_price, l.quantity, l.tax_rate_bp)
        for l in order.lines
    ]
    return compute_totals(lines, order.shipping, order.shipping_tax_rate_bp)


def _load(token: str) -> Order:
    order = service.get_by_token(db_session(), token)
    if order is None:
        abort(404)
    return order


@bp.get("/<token>")
def show(token: str):
    order = _load(token)
    method = payment_methods().get(order.payment_method)
    return render_template(
        "orders/order.html", order=order, totals=order_totals(order), method=method,
        status_label=LABELS[order.state], OrderStatus=OrderStatus, demo_form=DemoPayForm(),
        tracking=[s.tracking for s in shipments(db_session(), order) if s.tracking],
    )


@bp.post("/<token>/pay/demo")
def pay_demo(token: str):
    order = _load(token)
    method = payment_methods().get("demo")
    form = DemoPayForm()
    if not isinstance(method, DemoPayment) or not method.availability().ok:
        abort(404)
    if not form.validate():
        abort(400)
    if order.state not in (OrderStatus.PENDING_PAYMENT,) and order.payment_method == "demo":
        flash("This order is not awaiting payment.", "warning")
        return redirect(url_for("orders.show", token=token), 303)
    if order.payment_method != "demo":
        abort(404)
    outcome = service.apply_payment_event(db_session(), method.payment_event(order_view(order)))
    flash("Payment received (demo)." if outcome.applied else "This payment was already recorded.",
          "success")
    return redirect(url_for("orders.show", token=token), 303)
