from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import gettext as _

from shop.admin.orders import shipments
from shop.cart.pricing import PricedLine, compute_totals
from shop.orders import service
from shop.orders.models import Order
from shop.orders.states import LABELS, OrderStatus
from shop.payments.base import OrderView
from shop.web.context import db_session, payment_methods

bp = Blueprint("orders", __name__, url_prefix="/orders")


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
    panel = method.panel(db_session(), order) if method is not None else None
    return render_template(
        "orders/order.html", order=order, totals=order_totals(order), method=method, panel=panel,
        status_label=_(LABELS[order.state]), OrderStatus=OrderStatus,
        tracking=[s.tracking for s in shipments(db_session(), order) if s.tracking],
    )
