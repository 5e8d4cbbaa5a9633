"""Admin pages for orders: list, detail (the only place showing personal data), actions."""

from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.admin import orders as admin_orders
from shop.admin.blueprint import bp
from shop.admin.catalog import CatalogError, parse_price
from shop.admin.forms import ActionForm, CancelForm, RefundForm, ResolveForm, ShipForm
from shop.money import Money
from shop.orders import service
from shop.orders.models import Order
from shop.orders.shipments import shipments
from shop.orders.states import LABELS, OrderError, OrderStatus, StockChoice, StockState
from shop.orders.views import order_totals
from shop.payments.base import PaymentActionError
from shop.refunds import service as refunds
from shop.web.context import database, db_session, payment_methods


def _order(number: str) -> Order:
    order = admin_orders.get_order(db_session(), number)
    if order is None:
        abort(404)
    return order


def _method(order: Order):
    """The order's payment method (its lifecycle: cancel, refund, what is refundable)."""
    method = payment_methods().get(order.payment_method)
    if method is None:
        abort(409, "This order's payment method is not offered by this shop any more.")
    return method


def _cursor(name: str) -> int | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        abort(400, f"“{raw[:20]}” is not a position in this list; start again from the first page.")
    return int(raw)


@bp.get("/orders")
def orders():
    status = request.args.get("status", "")
    method = request.args.get("method", "")
    if status and status not in {s.value for s in OrderStatus}:
        status = ""
    # The shop's own methods, not a DISTINCT over every order ever placed; orders of a method
    # since removed stay visible under "all".
    methods = sorted(payment_methods())
    if method not in methods:
        method = ""
    dates = {}
    for name in ("placed_from", "placed_to"):
        text = request.args.get(name, "").strip()
        try:
            dates[name] = date.fromisoformat(text) if text else None
        except ValueError:
            dates[name] = None
            flash(f"“{text[:20]}” is not a date such as 2026-03-31; it was ignored.", "warning")
    number = request.args.get("q", "")[:40]
    result = admin_orders.list_orders(
        db_session(),
        status=status,
        method=method,
        before_id=_cursor("before"),
        after_id=_cursor("after"),
        number=number,
        **dates,
    )
    filters = {
        "status": status,
        "method": method,
        "q": number.strip(),
        **{k: v.isoformat() if v else "" for k, v in dates.items()},
    }
    return render_template(
        "admin/orders.html",
        result=result,
        status=status,
        method=method,
        methods=methods,
        labels=LABELS,
        OrderStatus=OrderStatus,
        filters=filters,
    )


@bp.get("/tasks")
def tasks():
    result = admin_orders.tasks(
        db_session(), before_id=_cursor("before"), after_id=_cursor("after")
    )
    return render_template("admin/tasks.html", orders=result.items, result=result, labels=LABELS)


@bp.get("/orders/<number>")
def order_detail(number: str):
    order = _order(number)
    db = db_session()
    refund_form = RefundForm()
    method = payment_methods().get(order.payment_method)
    refundable = method.refundable(db, order) if method is not None else None
    refund_form.amount.data = _decimal(refundable.amount if refundable else 0, order.currency)
    try:
        contact, unreadable = admin_orders.contact(db, order), False
    except admin_orders.ContactUnreadable:
        contact, unreadable = None, True
    return render_template(
        "admin/order.html",
        order=order,
        totals=order_totals(order),
        labels=LABELS,
        OrderStatus=OrderStatus,
        contact=contact,
        contact_unreadable=unreadable,
        shipments=shipments(db, order),
        payments=admin_orders.payments(db, order),
        emails=admin_orders.emails(db, order),
        ship_form=ShipForm(),
        cancel_form=CancelForm(),
        resolve_form=ResolveForm(),
        refund_address=refunds.get(db, order),
        refund_form=refund_form,
        action=ActionForm(),
        refundable=refundable,
        unshipped=_lines_in(order, StockState.COMMITTED),
        shipped=_lines_in(order, StockState.SHIPPED),
    )


def _lines_in(order: Order, state: StockState) -> list:
    return [line for line in order.lines if line.stock_state == state.value]


def _settle_stock(order: Order, form: RefundForm) -> None:
    """The merchant's stock choice for this refund (before the refund is recorded, so a full
    refund's default restock does not pre-empt it)."""
    service.settle_stock(
        db_session(),
        order,
        form.stock.data or "restock",
        "refunded",
        returned=bool(form.returned.data),
    )


def _decimal(amount: int, currency: str) -> str:
    return str(Money(amount, currency).to_decimal())


def _back(order: Order):
    return redirect(url_for("admin.order_detail", number=order.number), 303)


def _form_errors(form) -> None:
    for errors in form.errors.values():
        for e in errors:
            flash(e, "error")


@bp.post("/orders/<number>/ship")
def order_ship(number: str):
    order, form = _order(number), ShipForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    try:
        service.ship(db_session(), order, form.tracking.data or "")
    except OrderError as exc:
        flash(f"Cannot mark as shipped: {exc}.", "error")
        return _back(order)
    flash(_("Marked as shipped."), "success")
    return _back(order)


@bp.post("/orders/<number>/close")
def order_close(number: str):
    order = _order(number)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.close(db_session(), order)
    except OrderError as exc:
        flash(f"Cannot close: {exc}.", "error")
        return _back(order)
    flash(_("Order closed (delivered)."), "success")
    return _back(order)


@bp.post("/orders/<number>/cancel")
def order_cancel(number: str):
    order, form = _order(number), CancelForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    order_id, reason = order.id, (form.reason.data or "").strip() or "Cancelled by the shop"
    restock = bool(form.restock.data)
    method = _method(order)
    # The method closes what the customer could still pay with (a Stripe page) before the
    # order is cancelled, in its own units of work: nothing of this request may be pending.
    db_session().rollback()
    try:
        method.cancel(database(), order_id, reason)
        if not restock:  # cancelling put the units back; the merchant says they are gone
            service.settle_stock(
                db_session(), _order(number), StockChoice.WRITE_OFF, f"cancelled ({reason})"
            )
    except PaymentActionError as exc:
        flash(f"Not cancelled: {exc}", "error")
        return _back(order)
    except OrderError as exc:
        flash(f"Cannot cancel: {exc}. A paid order is refunded instead.", "error")
        return _back(order)
    flash(
        _("Order cancelled; its items are back in stock.")
        if restock
        else "Order cancelled; its items were taken off the shelf.",
        "success",
    )
    return _back(order)


@bp.post("/orders/<number>/refund")
def order_refund(number: str):
    order, form = _order(number), RefundForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    try:
        amount = parse_price(form.amount.data, order.currency)
    except CatalogError as exc:
        flash(str(exc), "error")
        return _back(order)
    method, order_id = _method(order), order.id
    db_session().rollback()  # the method commits its own units around any provider call
    try:
        message = method.refund(database(), order_id, amount, form.reference.data or "")
    except (PaymentActionError, OrderError) as exc:
        flash(f"Refund not made: {exc}", "error")
        return _back(order)
    # After the provider answered (no variant row stays locked while it is asked): what the
    # merchant chose for the units. A full refund restocked them already; writing off or
    # taking back returned units still applies.
    _settle_stock(_order(number), form)
    flash(message, "success")
    return _back(order)


@bp.post("/orders/<number>/resolve")
def order_resolve(number: str):
    order, form = _order(number), ResolveForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    service.resolve_attention(db_session(), order, (form.note.data or "").strip())
    flash(_("Marked as resolved."), "success")
    return _back(order)


@bp.post("/orders/<number>/refund-address")
def order_ask_refund_address(number: str):
    order = _order(number)
    if not ActionForm().validate_on_submit():
        abort(400)
    if not _method(order).refundable(db_session(), order).to_address:
        flash(_("This payment method does not refund to an address the customer gives."), "error")
        return _back(order)
    try:
        refunds.request_address(db_session(), order)
    except refunds.RefundAddressError as exc:
        flash(str(exc), "error")
    else:
        flash(_("The customer's order page now asks for a refund address."), "success")
    return _back(order)
