"""The merchant's side of a Bitcoin invoice: what the chain shows, and the decisions a person
must make when the chain cannot (settle a short payment anyway, give up on one that is gone)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import RadioField, SelectChoice, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from shop.admin.session import current_admin
from shop.db import utcnow
from shop.orders.models import Order
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.method import BitcoinPayment
from shop.web.context import db_session, payment_methods
from shop.web.forms import ShopForm

bp = Blueprint("bitcoin_admin", __name__, url_prefix="/admin/bitcoin")


class MarkForm(ShopForm):
    decision = RadioField(
        _l("Decision"),
        choices=[
            SelectChoice("settled", "Mark settled: treat the order as paid"),
            SelectChoice(
                "invalid", "Mark invalid: give up on this payment (an unpaid order is cancelled)"
            ),
        ],
        validators=[InputRequired(message=_l("Choose settled or invalid."))],
    )
    reason = StringField(
        _l("Reason (kept in the order's history and the books)"),
        validators=[InputRequired(message=_l("Say why.")), Length(max=300)],
    )
    submit = SubmitField(_l("Record decision"))


@bp.before_request
def _require_admin():
    if current_admin() is None:
        return redirect(url_for("admin.login"), 303)
    return None


@bp.app_template_global("bitcoin_mark_form")
def bitcoin_mark_form() -> MarkForm:
    return MarkForm(formdata=None)


@bp.app_template_global("bitcoin_invoice_label")
def bitcoin_invoice_label(invoice) -> str:
    return inv.label(inv.Status(invoice.status), inv.Exc(invoice.exception))


@bp.post("/<number>/mark")
def mark(number: str):
    session = db_session()
    order = session.scalar(select(Order).where(Order.number == number))
    invoice = inv.get_invoice(session, order.id) if order is not None else None
    if invoice is None:
        abort(404)
    form = MarkForm()
    target = url_for("admin.order_detail", number=number)
    if not form.validate():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return redirect(target, 303)
    method = payment_methods().get("bitcoin")
    policy = method.policy if isinstance(method, BitcoinPayment) else None
    if policy is None:
        abort(404)
    try:
        with session.begin_nested():
            inv.mark(
                session,
                invoice,
                form.decision.data,
                form.reason.data,
                policy,
                inv.tip_height(session),
                utcnow(),
            )
    except inv.CannotMark as exc:
        flash(str(exc), "error")
    else:
        flash(f"Bitcoin payment marked {form.decision.data}.", "success")
    return redirect(target, 303)
