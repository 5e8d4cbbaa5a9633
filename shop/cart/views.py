from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, IntegerField, SubmitField
from wtforms.validators import InputRequired, NumberRange

from shop.cart.pricing import MAX_LINES, MAX_QUANTITY, compute_totals
from shop.cart.service import load_tax_classes, localize_lines, review_cart, use_tax_classes
from shop.cart.storage import CartLine, load_cart, save_cart
from shop.catalog import service as catalog
from shop.catalog.views import add_to_cart_form, catalog_cache
from shop.web.context import db_session
from shop.web.forms import ShopForm

bp = Blueprint("cart", __name__, url_prefix="/cart")


class UpdateLineForm(ShopForm):
    variant_id = HiddenField(validators=[InputRequired()])
    quantity = IntegerField(
        _l("Quantity"),
        validators=[
            InputRequired(_l("Please enter a quantity.")),
            NumberRange(0, MAX_QUANTITY, _l("Choose between %(min)s and %(max)s.")),
        ],
    )
    submit = SubmitField(_l("Update"))


class RemoveLineForm(ShopForm):
    variant_id = HiddenField(validators=[InputRequired()])
    submit = SubmitField(_l("Remove"))


def _variant_id(raw: str | None) -> int:
    if not raw or not raw.isdigit() or len(raw) > 10:
        abort(400)
    return int(raw)


@bp.get("")
def show():
    review = review_cart(db_session(), load_cart(session))
    # Tell the customer once, then keep the cart consistent with what they were told.
    for problem in review.problems:
        flash(str(problem), "warning")
    if review.problems:
        save_cart(session, review.adjusted)
    # Once the checkout knows the customer's country, the cart shows that country's VAT.
    country = session.get("country")
    lines = review.lines
    if isinstance(country, str) and len(country) == 2 and country.isalpha():
        use_tax_classes(
            db_session(),
            catalog_cache().get(("tax-classes",), lambda: load_tax_classes(db_session())),
        )
        lines = localize_lines(db_session(), review.lines, country)
    else:
        country = None
    return render_template(
        "cart/cart.html",
        review=review,
        lines=lines,
        totals=compute_totals(lines),
        country=country,
        update_form=UpdateLineForm,
        remove_form=RemoveLineForm(),
    )


@bp.post("/add/<slug>")
def add(slug: str):
    if len(slug) > 120:
        abort(404)
    # Fresh from the database (never the catalog cache): stock and price decide here.
    product = catalog.product_view(db_session(), slug, images=False)
    if product is None:
        abort(404)
    form = add_to_cart_form(product, formdata=request.form)

    def refused(status: int):
        # The page again, with its images this time, and the form's messages.
        shown = catalog.product_view(db_session(), slug) or product
        return render_template("catalog/product.html", product=shown, form=form), status

    if not form.validate():
        return refused(400)
    variant = next(v for v in product.variants if v.id == form.variant.data)
    lines = load_cart(session)
    existing = next((l for l in lines if l.variant_id == variant.id), None)
    wanted = form.quantity.data + (existing.quantity if existing else 0)
    if wanted > MAX_QUANTITY:
        form.quantity.errors = [_("At most %(num)d of one item per order.", num=MAX_QUANTITY)]
        return refused(400)
    if variant.stock is not None and wanted > variant.stock:
        form.quantity.errors = [
            _("Sold out.")
            if variant.stock == 0
            else _("Only %(num)d left in stock.", num=variant.stock)
        ]
        return refused(409)
    if existing:
        existing.quantity, existing.price_seen = wanted, variant.price
    elif len(lines) >= MAX_LINES:
        form.quantity.errors = [_("A cart holds at most %(num)d different items.", num=MAX_LINES)]
        return refused(400)
    else:
        lines.append(CartLine(variant.id, wanted, variant.price))
    save_cart(session, lines)
    session.permanent = True
    flash(
        _(
            "Added %(num)d × %(product)s to your cart.",
            num=form.quantity.data,
            product=product.title,
        ),
        "success",
    )
    return redirect(url_for("cart.show"), 303)


@bp.post("/update")
def update():
    form = UpdateLineForm()
    if not form.validate():
        errors = form.quantity.errors or [_("Please enter a valid quantity.")]
        flash(str(errors[0]), "error")
        return redirect(url_for("cart.show"), 303)
    variant_id = _variant_id(form.variant_id.data)
    lines = load_cart(session)
    line = next((l for l in lines if l.variant_id == variant_id), None)
    if line is None:
        flash(_("That item is not in your cart any more."), "warning")
        return redirect(url_for("cart.show"), 303)
    if form.quantity.data == 0:
        lines.remove(line)
    else:
        variant = catalog.get_variants(db_session(), [variant_id]).get(variant_id)
        left = variant.available if variant is not None else None
        if variant is not None and left is not None and form.quantity.data > left:
            flash(
                _(
                    "Only %(num)d of “%(product)s” left in stock.",
                    num=left,
                    product=variant.product.title,
                ),
                "error",
            )
            return redirect(url_for("cart.show"), 303)
        line.quantity = form.quantity.data
    save_cart(session, lines)
    flash(_("Your cart was updated."), "success")
    return redirect(url_for("cart.show"), 303)


@bp.post("/remove")
def remove():
    form = RemoveLineForm()
    if not form.validate():
        abort(400)
    variant_id = _variant_id(form.variant_id.data)
    save_cart(session, [l for l in load_cart(session) if l.variant_id != variant_id])
    flash(_("The item was removed from your cart."), "success")
    return redirect(url_for("cart.show"), 303)
