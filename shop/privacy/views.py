"""Customer self-service on the order page: download my data, erase my personal data now.

The order's secret link is the only credential (there are no accounts), as for the order page.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from flask import Blueprint, Response, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SubmitField

from shop.orders import service
from shop.orders.models import Order
from shop.orders.states import OrderStatus
from shop.privacy.export import export_order_data
from shop.privacy.purge import keep_reason, request_erasure
from shop.privacy.store import held_fields, holds_other_personal_data
from shop.web.context import db_session, settings
from shop.web.forms import ShopForm

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")

bp = Blueprint("privacy", __name__, url_prefix="/orders/<token>/privacy")


class EraseForm(ShopForm):
    submit = SubmitField(_l("Erase my personal data now"))


def _load(token: str) -> Order:
    # Tokens are urlsafe base64; anything else (a NUL byte upsets PostgreSQL) is not an order.
    if not _TOKEN.fullmatch(token):
        abort(404)
    order = service.get_by_token(db_session(), token)
    if order is None:
        abort(404)
    return order


@bp.get("/data.json")
def download(token: str):
    order = _load(token)
    body = json.dumps(
        export_order_data(db_session(), order, settings().store_name), indent=2, ensure_ascii=False
    )
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="order-{order.number}-my-data.json"',
        },
    )


@bp.post("/erase")
def erase(token: str):
    order = _load(token)
    if not EraseForm().validate():
        abort(400)
    outcome = request_erasure(db_session(), order)
    flash(str(outcome.message), "success" if outcome.erased else "info")
    return redirect(url_for("orders.show", token=token), 303)


@bp.app_template_global()
def privacy_panel(order: Order) -> dict:
    """What the order page's privacy section shows."""
    session = db_session()
    verdict = None if order.personal_data_erased_at else keep_reason(session, order)
    held = held_fields(session, order)
    other = not order.personal_data_erased_at and holds_other_personal_data(session, order)
    unpaid_until = None
    if order.state == OrderStatus.PENDING_PAYMENT:
        unpaid_until = order.expires_at + timedelta(hours=settings().retention_unpaid_hours)
    return {
        "holds_contact": bool(held) or other,
        "holds_other": other,
        "holds_email": "email" in held,
        "holds_address": bool(held - {"email"}),
        # Pressing the button erases at once only when the order no longer needs the data.
        "erase_at_once": verdict is not None and verdict.due_at is not None,
        "unpaid_until": unpaid_until,
        "erased_at": order.personal_data_erased_at,
        "requested_at": order.personal_data_erase_requested_at,
        "due_at": verdict.due_at if verdict else None,
        "kept_because": _(verdict.why) if verdict and verdict.due_at is None else None,
        "form": EraseForm(),
    }
