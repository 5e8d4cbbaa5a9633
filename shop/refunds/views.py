"""The customer gives a Bitcoin refund address on their order page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import StringField, SubmitField
from wtforms.validators import InputRequired, Length

from shop.orders import service as orders
from shop.refunds import service
from shop.web.context import db_session, settings
from shop.web.forms import ShopForm

bp = Blueprint("refunds", __name__, url_prefix="/orders")


class RefundAddressForm(ShopForm):
    address = StringField(
        _l("Your Bitcoin address for the refund"),
        validators=[InputRequired(_l("Please enter a Bitcoin address.")), Length(max=100)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Send address"))


@bp.record_once
def _setup(state) -> None:
    def refund_address(order):
        return service.get(db_session(), order)

    state.app.jinja_env.globals["refund_address"] = refund_address
    state.app.jinja_env.globals["RefundAddressForm"] = RefundAddressForm


@bp.post("/<token>/refund-address")
def give(token: str):
    order = orders.get_by_token(db_session(), token)
    if order is None:
        abort(404)
    form = RefundAddressForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for e in errors:
                flash(str(e), "error")
        return redirect(url_for("orders.show", token=token), 303)
    network = getattr(settings(), "bitcoin_network", "main") or "main"
    try:
        service.give_address(db_session(), order, form.address.data, network)
    except service.RefundAddressError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Thank you: we will send your refund to this address."), "success")
    return redirect(url_for("orders.show", token=token), 303)
