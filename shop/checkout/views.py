from __future__ import annotations

from babel import Locale
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from wtforms import EmailField, RadioField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import Email, InputRequired, Length, Optional

from shop.cart.pricing import compute_totals
from shop.cart.storage import load_cart, save_cart
from shop.catalog.views import catalog_cache
from shop.checkout.service import (
    load_zones,
    review_cart,
    shipping_countries,
    shipping_options,
    use_zones,
)
from shop.orders import service as orders
from shop.payments.registry import available_methods
from shop.web.context import db_session, payment_methods, settings
from shop.web.forms import NoControlCharacters, ShopForm

bp = Blueprint("checkout", __name__, url_prefix="/checkout")


class CheckoutForm(ShopForm):
    email = EmailField(
        "Email (optional)",
        validators=[NoControlCharacters(), Optional(),
                    Email("Please enter a valid email address, or leave it empty."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    name = StringField("Full name", validators=[NoControlCharacters(), Length(max=200)],
                       render_kw={"autocomplete": "name"})
    street = StringField("Street and house number", validators=[NoControlCharacters(), Length(max=300)],
                         render_kw={"autocomplete": "street-address"})
    postal_code = StringField("Postal code", validators=[NoControlCharacters(), Length(max=20)],
                              render_kw={"autocomplete": "postal-code"})
    city = StringField("City", validators=[NoControlCharacters(), Length(max=100)],
                       render_kw={"autocomplete": "address-level2"})
    country = SelectField("Country", validators=[InputRequired("Please choose your country.")],
                          render_kw={"autocomplete": "country"})
    shipping_rate = RadioField("Shipping method", coerce=int, validate_choice=False,
                               validators=[Optional()])
    payment_method = RadioField("Payment method",
                                validators=[InputRequired("Please choose how to pay.")])
    refresh = SubmitField("Update shipping options")
    submit = SubmitField("Place order")

    ADDRESS_FIELDS = ("name", "street", "postal_code", "city")


def _country_choices(requires_shipping: bool) -> list[SelectChoice]:
    territories = Locale.parse(settings().locale).territories
    if requires_shipping:
        codes = shipping_countries(db_session())
    else:
        codes = [code for code in territories if len(code) == 2 and code.isalpha() and code != "ZZ"]
    return sorted((SelectChoice(c, territories.get(c, c)) for c in codes),
                  key=lambda choice: choice.label)


def _prepare(form: CheckoutForm, review) -> list:
    form.country.choices = _country_choices(review.requires_shipping)
    codes = [choice.value for choice in form.country.choices]
    if form.country.data not in codes:
        form.country.data = settings().country if settings().country in codes else (codes or [None])[0]
    form.payment_method.choices = [SelectChoice(m.code, m.label)
                                   for m in available_methods(payment_methods())]
    if len(form.payment_method.choices) == 1 and not form.payment_method.data:
        form.payment_method.data = form.payment_method.choices[0].value
    options = []
    if review.requires_shipping and form.country.data:
        options = shipping_options(db_session(), form.country.data, review.subtotal)
        form.shipping_rate.choices = [SelectChoice(o.rate_id, o.name) for o in options]
        if form.shipping_rate.data not in [o.rate_id for o in options] and options:
            form.shipping_rate.data = options[0].rate_id
    return options


def _render(form: CheckoutForm, review, options, status: int = 200):
    chosen = next((o for o in options if o.rate_id == form.shipping_rate.data), None)
    totals = compute_totals(review.lines, chosen.price if chosen else 0,
                            chosen.tax_rate_bp if chosen else 0)
    return render_template("checkout/checkout.html", form=form, review=review, options=options,
                           totals=totals, methods=payment_methods()), status


@bp.route("", methods=["GET", "POST"])
def checkout():
    # Shipping rates change rarely: share them between requests as briefly as the catalog.
    use_zones(db_session(), catalog_cache().get(("shipping-zones",),
                                                lambda: load_zones(db_session())))
    review = review_cart(db_session(), load_cart(session))
    if review.problems:
        for problem in review.problems:
            flash(problem, "warning")
        save_cart(session, review.adjusted)
        return redirect(url_for("cart.show"), 303)
    if not review.lines:
        flash("Your cart is empty.", "warning")
        return redirect(url_for("cart.show"), 303)

    form = CheckoutForm()
    options = _prepare(form, review)
    if request.method == "GET" or form.refresh.data:
        return _render(form, review, options)
    if not form.validate():
        return _render(form, review, options, 400)
    if review.requires_shipping:
        missing = [f for f in form.ADDRESS_FIELDS if not (getattr(form, f).data or "").strip()]
        for name in missing:
            getattr(form, name).errors = [*getattr(form, name).errors,
                                          "Needed to ship your order."]
        if not options:
            form.country.errors = [*form.country.errors, "We cannot ship to this country yet."]
        if missing or not options:
            return _render(form, review, options, 400)

    def clean(name: str) -> str | None:
        value = (getattr(form, name).data or "").strip()
        return value or None

    try:
        order = orders.place_order(
            db_session(),
            orders.PlaceOrder(
                cart=load_cart(session),
                country=form.country.data,
                payment_method=form.payment_method.data,
                currency=settings().currency,
                expiry_minutes=settings().order_expiry_minutes,
                shipping_rate_id=form.shipping_rate.data,
                contact=orders.ContactDetails(
                    email=clean("email"), name=clean("name"), street=clean("street"),
                    postal_code=clean("postal_code"), city=clean("city"),
                ),
            ),
        )
    except orders.CartChanged as exc:
        for problem in exc.problems:
            flash(problem, "warning")
        save_cart(session, exc.adjusted)
        return redirect(url_for("cart.show"), 303)
    except (orders.OutOfStock, orders.ShippingUnavailable, orders.EmptyCart) as exc:
        flash(str(exc), "error")
        db_session().rollback()
        return redirect(url_for("cart.show"), 303)
    save_cart(session, [])
    return redirect(url_for("orders.show", token=order.token), 303)
