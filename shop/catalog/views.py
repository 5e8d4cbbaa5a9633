from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from wtforms import IntegerField, RadioField, SelectChoice, SubmitField
from wtforms.validators import InputRequired, NumberRange

from shop.cart.pricing import MAX_QUANTITY
from shop.catalog import service
from shop.web.context import db_session, settings
from shop.web.forms import ShopForm

bp = Blueprint("catalog", __name__)


class AddToCartForm(ShopForm):
    variant = RadioField(
        _l("Option"), coerce=int, validators=[InputRequired(_l("Please choose an option."))]
    )
    quantity = IntegerField(
        _l("Quantity"),
        default=1,
        validators=[
            InputRequired(_l("Please enter a quantity.")),
            NumberRange(1, MAX_QUANTITY, _l("Choose between %(min)s and %(max)s.")),
        ],
    )
    submit = SubmitField(_l("Add to cart"))


def catalog_cache() -> service.CatalogCache:
    return current_app.extensions["shop.catalog_cache"]


@bp.get("/")
def index():
    query = " ".join(request.args.get("q", "")[: service.MAX_QUERY_LENGTH].split())
    if "page" in request.args:
        # Links from before keyset paging (?page=N): their pages moved, so send them to the
        # first one for good; anything else is not a page of ours.
        if not request.args["page"].isdigit():
            abort(404)
        return redirect(url_for("catalog.index", q=query or None), 301)
    after, before = request.args.get("after"), request.args.get("before")
    if after is not None and before is not None:
        abort(400, "Give either after or before, not both.")
    per_page = settings().products_per_page
    try:
        page = catalog_cache().get(
            ("list", query.lower(), after, before, per_page),
            lambda: service.list_products(
                db_session(), query=query, after=after, before=before, per_page=per_page
            ),
        )
    except service.BadCursor:
        abort(400, "This page link is damaged; start again from the first page.")
    if not page.items and (after is not None or before is not None):
        abort(404)
    return render_template("catalog/index.html", page=page, query=query)


def add_to_cart_form(product, formdata=None) -> AddToCartForm:
    form = AddToCartForm(formdata=formdata) if formdata is not None else AddToCartForm()
    form.variant.choices = [
        SelectChoice(v.id, v.label or _l("Standard")) for v in product.variants if v.active
    ]
    if form.variant.data is None and form.variant.choices:
        purchasable = [v.id for v in product.variants if v.purchasable]
        form.variant.data = purchasable[0] if purchasable else form.variant.choices[0].value
    return form


@bp.get("/products/<slug>")
def product(slug: str):
    if len(slug) > 120:
        abort(404)
    item = catalog_cache().get(("product", slug), lambda: service.product_view(db_session(), slug))
    if item is None:
        abort(404)
    return render_template("catalog/product.html", product=item, form=add_to_cart_form(item))
