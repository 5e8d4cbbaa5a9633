"""The demo payment's button on the order page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _

from shop.orders import service
from shop.orders.states import OrderStatus
from shop.orders.views import order_view
from shop.payments.demo import DemoPayment
from shop.web.context import db_session, payment_methods
from shop.web.forms import ShopForm

bp = Blueprint("demo", __name__, url_prefix="/orders")


@bp.post("/<token>/pay/demo")
def pay(token: str):
    order = service.get_by_token(db_session(), token)
    method = payment_methods().get("demo")
    if not isinstance(method, DemoPayment) or not method.availability().ok:
        abort(404)
    if order is None or order.payment_method != method.code:
        abort(404)
    if not ShopForm().validate():
        abort(400)
    if order.state != OrderStatus.PENDING_PAYMENT:
        flash(_("This order is not awaiting payment."), "warning")
        return redirect(url_for("orders.show", token=token), 303)
    outcome = service.apply_payment_event(db_session(), method.payment_event(order_view(order)))
    flash(
        _("Payment received (demo).")
        if outcome.applied
        else _("This payment was already recorded."),
        "success",
    )
    return redirect(url_for("orders.show", token=token), 303)
