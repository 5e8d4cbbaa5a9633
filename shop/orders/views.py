from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from wtforms import SubmitField

from shop.cart.pricing import PricedLine, compute_totals
from shop.db import utcnow
from shop.mail import outbox
from shop.orders import service
from shop.orders.models import Order
from shop.orders.shipments import shipments
from shop.orders.states import LABELS, OrderStatus
from shop.payments.base import OrderView
from shop.privacy.store import read_contact
from shop.web.context import db_session, payment_methods, settings
from shop.web.forms import ShopForm

bp = Blueprint("orders", __name__, url_prefix="/orders")


def order_view(order: Order) -> OrderView:
    return OrderView(
        id=order.id,
        ref=order.ref,
        number=order.number,
        token=order.token,
        total=order.total,
        currency=order.currency,
        lines=[(l.product_title, l.unit_price, l.quantity) for l in order.lines],
    )


def order_totals(order: Order):
    lines = [
        PricedLine(
            l.variant_id or 0,
            "",
            l.product_title,
            l.variant_label,
            l.sku,
            l.kind,
            l.unit_price,
            l.quantity,
            l.tax_rate_bp,
            tax_country=l.tax_country,
        )
        for l in order.lines
    ]
    return compute_totals(
        lines, order.shipping, order.shipping_tax_rate_bp, order.shipping_tax_country
    )


def _load(token: str) -> Order:
    order = service.get_by_token(db_session(), token)
    if order is None:
        abort(404)
    return order


class EmailLinkForm(ShopForm):
    submit = SubmitField(_l("Send me the link by email"))


def _mail_possible() -> bool:
    # Without a base URL the emails cannot carry the link (they are rendered by the worker).
    return bool(settings().smtp_url and settings().base_url)


@bp.get("/<token>")
def show(token: str, status: int = 200):
    order = _load(token)
    session = db_session()
    method = payment_methods().get(order.payment_method)
    panel = method.panel(session, order) if method is not None else None
    # The link is the only credential: whoever holds it is shown what the order was sent with.
    contact = read_contact(session, order)
    emailed = (
        _mail_possible()
        and contact is not None
        and bool(contact.email)
        and outbox.link_emailed(session, order)
    )
    return render_template(
        "orders/order.html",
        order=order,
        totals=order_totals(order),
        method=method,
        panel=panel,
        status_label=_(LABELS[order.state]),
        OrderStatus=OrderStatus,
        contact=contact,
        mail_possible=_mail_possible(),
        link_emailed=emailed,
        email_link_form=EmailLinkForm(),
        tracking=[s.tracking for s in shipments(session, order) if s.tracking],
    ), status


@bp.post("/<token>/email-link")
def email_link(token: str):
    order = _load(token)
    session = db_session()
    contact = read_contact(session, order)
    if (
        not EmailLinkForm().validate()
        or not _mail_possible()
        or contact is None
        or not contact.email
    ):
        abort(400)
    try:
        outbox.queue_order_link(session, order)
    except outbox.LinkRateLimited as exc:
        minutes = max(1, int((exc.retry_at - utcnow()).total_seconds() + 59) // 60)
        flash(
            ngettext(
                "Please wait %(num)d minute before asking for the link again.",
                "Please wait %(num)d minutes before asking for the link again.",
                minutes,
            ),
            "warning",
        )
        return show(token, 429)
    flash(
        _(
            "We are sending the link to this order to the email address you gave. It can "
            "take a few minutes to arrive."
        ),
        "success",
    )
    return redirect(url_for("orders.show", token=token), 303)
