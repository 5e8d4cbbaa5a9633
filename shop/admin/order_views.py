"""Admin pages for orders: list, detail (the only place showing personal data), actions."""

from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for

from shop.admin import orders as admin_orders
from shop.admin.catalog import CatalogError, parse_price
from shop.admin.forms import ActionForm, CancelForm, RefundForm, ResolveForm, ShipForm
from shop.admin.views import bp
from shop.orders import service
from shop.orders.models import Order
from shop.orders.states import LABELS, OrderError, OrderStatus, StockState
from shop.orders.views import order_totals
from shop.refunds import service as refunds
from shop.web.context import db_session, payment_methods


def _order(number: str) -> Order:
    order = admin_orders.get_order(db_session(), number)
    if order is None:
        abort(404)
    return order


def _card_refund():
    """The card module's refund function and gateway, if card payments exist and are set up."""
    method = payment_methods().get("card")
    if method is None or not getattr(method, "configured", False):
        return None
    try:
        from shop.payments.stripe import service as card
    except ImportError:  # pragma: no cover - card payments not installed
        return None
    return card, method


@bp.get("/orders")
def orders():
    status = request.args.get("status", "")
    method = request.args.get("method", "")
    if status and status not in {s.value for s in OrderStatus}:
        status = ""
    methods = admin_orders.payment_methods_used(db_session())
    if method not in methods:
        method = ""
    page = request.args.get("page", 1, type=int) or 1
    dates = {}
    for name in ("placed_from", "placed_to"):
        text = request.args.get(name, "").strip()
        try:
            dates[name] = date.fromisoformat(text) if text else None
        except ValueError:
            dates[name] = None
            flash(f"“{text[:20]}” is not a date such as 2026-03-31; it was ignored.", "warning")
    number = request.args.get("q", "")[:40]
    result = admin_orders.list_orders(db_session(), status=status, method=method,
                                      page=min(max(page, 1), 10**6), number=number, **dates)
    filters = {"status": status, "method": method, "q": number.strip(),
               **{k: v.isoformat() if v else "" for k, v in dates.items()}}
    return render_template("admin/orders.html", result=result, status=status, method=method,
                           methods=methods, labels=LABELS, OrderStatus=OrderStatus,
                           filters=filters)


@bp.get("/tasks")
def tasks():
    return render_template("admin/tasks.html", orders=admin_orders.tasks(db_session()),
                           labels=LABELS)


@bp.get("/orders/<number>")
def order_detail(number: str):
    order = _order(number)
    db = db_session()
    refund_form = RefundForm()
    refund_form.amount.data = _decimal(admin_orders.refundable_amount(order), order.currency)
    try:
        contact, unreadable = admin_orders.contact(db, order), False
    except admin_orders.ContactUnreadable:
        contact, unreadable = None, True
    return render_template(
        "admin/order.html", order=order, totals=order_totals(order), labels=LABELS,
        OrderStatus=OrderStatus, contact=contact, contact_unreadable=unreadable,
        shipments=admin_orders.shipments(db, order), payments=admin_orders.payments(db, order),
        emails=admin_orders.emails(db, order), ship_form=ShipForm(), cancel_form=CancelForm(),
        resolve_form=ResolveForm(), refund_address=refunds.get(db, order),
        refund_form=refund_form, action=ActionForm(), card_refund=_card_refund() is not None,
        refundable=order.state in admin_orders.REFUNDABLE and admin_orders.refundable_amount(order) > 0,
        unshipped=_lines_in(order, StockState.COMMITTED),
        shipped=_lines_in(order, StockState.SHIPPED),
    )


def _lines_in(order: Order, state: StockState) -> list:
    return [line for line in order.lines if line.stock_state == state.value]


def _settle_stock(order: Order, form: RefundForm) -> None:
    """The merchant's stock choice for this refund (before the refund is recorded, so a full
    refund's default restock does not pre-empt it)."""
    service.settle_stock(db_session(), order, form.stock.data or "restock", "refunded",
                         returned=bool(form.returned.data))


def _decimal(amount: int, currency: str) -> str:
    from shop.money import Money

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
    flash("Marked as shipped.", "success")
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
    flash("Order closed (delivered).", "success")
    return _back(order)


@bp.post("/orders/<number>/cancel")
def order_cancel(number: str):
    order, form = _order(number), CancelForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    card = _card_refund() if order.payment_method == "card" else None
    if card is not None and order.state == OrderStatus.PENDING_PAYMENT:
        module, method = card
        # Close the customer's Stripe payment page first: nobody should pay for a cancelled order.
        try:
            module.close_open_pages(db_session(), method.gateway, order)
        except module.CardUnavailable:
            flash("Stripe could not be reached, so the customer's payment page may still be "
                  "open. The order was not cancelled; please try again.", "error")
            return _back(order)
    restock = bool(form.restock.data)
    try:
        service.cancel(db_session(), order, (form.reason.data or "").strip() or "Cancelled by the shop",
                       restock=restock)
    except OrderError as exc:
        flash(f"Cannot cancel: {exc}. A paid order is refunded instead.", "error")
        return _back(order)
    flash("Order cancelled; its items are back in stock." if restock
          else "Order cancelled; its items were taken off the shelf.", "success")
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
    if not 0 < amount <= admin_orders.refundable_amount(order):
        flash("The refund must be more than zero and at most what is left of the payment.",
              "error")
        return _back(order)
    if order.payment_method == "card":
        card = _card_refund()
        if card is None:
            flash("Card refunds need the Stripe settings; refund in the Stripe Dashboard.", "error")
            return _back(order)
        module, method = card
        try:
            row = module.refund(db_session(), method.gateway, order, amount)
        except module.CardPaymentError as exc:
            flash(f"Refund not made: {exc}", "error")
            return _back(order)
        # After Stripe answered: no variant row stays locked while it is asked.
        _settle_stock(order, form)
        flash(f"Card refund {row.status}." if row.status != "succeeded"
              else "Card refund made.", "success")
        return _back(order)
    _settle_stock(order, form)
    try:
        applied = admin_orders.record_manual_refund(db_session(), order, amount,
                                                    form.reference.data or "")
    except (admin_orders.RefundError, OrderError) as exc:
        db_session().rollback()
        flash(str(exc), "error")
        return _back(order)
    flash("Refund recorded." if applied else "This refund was already recorded.", "success")
    return _back(order)


@bp.post("/orders/<number>/resolve")
def order_resolve(number: str):
    order, form = _order(number), ResolveForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return _back(order)
    service.resolve_attention(db_session(), order, (form.note.data or "").strip())
    flash("Marked as resolved.", "success")
    return _back(order)


@bp.post("/orders/<number>/refund-address")
def order_ask_refund_address(number: str):
    order = _order(number)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        refunds.request_address(db_session(), order)
    except refunds.RefundAddressError as exc:
        flash(str(exc), "error")
    else:
        flash("The customer's order page now asks for a refund address.", "success")
    return _back(order)
