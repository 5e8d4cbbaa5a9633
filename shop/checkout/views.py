from __future__ import annotations

import secrets

from babel import Locale
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import Email, InputRequired, Length, Optional

from shop.cart.pricing import compute_totals
from shop.cart.service import (
    load_tax_classes,
    load_zones,
    localize_lines,
    real_countries,
    review_cart,
    shipping_countries,
    shipping_options,
    use_tax_classes,
    use_zones,
)
from shop.cart.storage import load_cart, save_cart
from shop.catalog.views import catalog_cache
from shop.money import format_money
from shop.orders import service as orders
from shop.payments.registry import available_methods
from shop.web import i18n
from shop.web.context import db_session, payment_methods, settings
from shop.web.forms import NoControlCharacters, ShopForm

bp = Blueprint("checkout", __name__, url_prefix="/checkout")


class CheckoutForm(ShopForm):
    email = EmailField(
        _l("Email (optional)"),
        validators=[
            NoControlCharacters(),
            Optional(),
            Email(_l("Please enter a valid email address, or leave it empty.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "email"},
    )
    name = StringField(
        _l("Full name"),
        validators=[NoControlCharacters(), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    street = StringField(
        _l("Street and house number"),
        validators=[NoControlCharacters(), Length(max=300)],
        render_kw={"autocomplete": "street-address"},
    )
    postal_code = StringField(
        _l("Postal code"),
        validators=[NoControlCharacters(), Length(max=20)],
        render_kw={"autocomplete": "postal-code"},
    )
    city = StringField(
        _l("City"),
        validators=[NoControlCharacters(), Length(max=100)],
        render_kw={"autocomplete": "address-level2"},
    )
    country = SelectField(
        _l("Country"),
        validators=[InputRequired(_l("Please choose your country."))],
        invalid_choice_message=_l("Please choose your country from the list."),
        render_kw={"autocomplete": "country"},
    )
    shipping_rate = RadioField(
        _l("Shipping method"), coerce=int, validate_choice=False, validators=[Optional()]
    )
    payment_method = RadioField(
        _l("Payment method"), validators=[InputRequired(_l("Please choose how to pay."))]
    )
    # Shown only when the cart holds digital goods (§ 356 (5) BGB); the order records it with
    # consent.VERSION, whose wording this label must stay (tests check it).
    digital_consent = BooleanField(
        _l(
            "I agree that delivery of the digital content starts now, before the withdrawal "
            "period ends, and I acknowledge that I thereby lose my right of withdrawal."
        )
    )
    refresh = SubmitField(_l("Update shipping options"))
    # Says that it commits to pay (§ 312j (3) BGB: "zahlungspflichtig bestellen").
    submit = SubmitField(_l("Place order and pay"))
    # What this page showed: placing the order checks it (one order per checkout token, and
    # only for the total shown, in the country shown).
    checkout_token = HiddenField()
    shown_total = HiddenField()
    shown_country = HiddenField()

    ADDRESS_FIELDS = ("name", "street", "postal_code", "city")


def _country_choices(requires_shipping: bool) -> list[SelectChoice]:
    # Country names in the customer's language, sorted as they read them.
    territories = Locale.parse(i18n.locale()).territories
    countries = real_countries()
    # Physical goods go where a zone ships; digital ones to any real country (VAT needs it).
    codes = (
        [c for c in shipping_countries(db_session()) if c in countries]
        if requires_shipping
        else countries
    )
    return sorted(
        (SelectChoice(c, territories.get(c, c)) for c in codes), key=lambda choice: choice.label
    )


def _prepare(form: CheckoutForm, review) -> list:
    form.country.choices = _country_choices(review.requires_shipping)
    codes = [choice.value for choice in form.country.choices]
    posted_elsewhere = (
        request.method == "POST" and not form.refresh.data and bool(form.country.data)
    )
    # A posted country that is not on the list is refused by the field's choice check, never
    # silently replaced by another one.
    if form.country.data not in codes and not posted_elsewhere:
        form.country.data = (
            settings().country if settings().country in codes else (codes or [None])[0]
        )
    form.payment_method.choices = [
        SelectChoice(m.code, _(m.label)) for m in available_methods(payment_methods())
    ]
    if len(form.payment_method.choices) == 1 and not form.payment_method.data:
        form.payment_method.data = form.payment_method.choices[0].value
    options = []
    if review.requires_shipping and form.country.data in codes:
        goods = sum(
            line.total for line in localize_lines(db_session(), review.lines, form.country.data)
        )
        options = shipping_options(db_session(), form.country.data, goods)
        form.shipping_rate.choices = [SelectChoice(o.rate_id, o.name) for o in options]
        if form.shipping_rate.data not in [o.rate_id for o in options] and options:
            form.shipping_rate.data = options[0].rate_id
    return options


def _lines(form: CheckoutForm, review):
    """The cart priced for the chosen country (whose VAT, and the price if net is fixed)."""
    return (
        localize_lines(db_session(), review.lines, form.country.data)
        if form.country.data
        else review.lines
    )


def _totals(form: CheckoutForm, review, options):
    chosen = next((o for o in options if o.rate_id == form.shipping_rate.data), None)
    return chosen, compute_totals(
        _lines(form, review),
        chosen.price if chosen else 0,
        chosen.tax_rate_bp if chosen else 0,
        chosen.tax_country if chosen else None,
    )


def _render(form: CheckoutForm, review, options, status: int = 200):
    _chosen, totals = _totals(form, review, options)
    form.checkout_token.data = _checkout_token()
    form.shown_total.data = str(totals.total)
    form.shown_country.data = form.country.data or ""
    if form.country.data:
        # The cart page shows this country's VAT from now on (a session value, no cookie of its own).
        session["country"] = form.country.data
    return render_template(
        "checkout/checkout.html",
        form=form,
        review=review,
        options=options,
        lines=_lines(form, review),
        totals=totals,
        methods=payment_methods(),
    ), status


_TOKEN = "checkout_token"


def _checkout_token() -> str:
    """This checkout's one-time token: kept in the session until it places an order, so every
    tab and every resend of the form is the same checkout."""
    token = session.get(_TOKEN)
    if not isinstance(token, str) or len(token) != 32:
        token = session[_TOKEN] = secrets.token_urlsafe(24)
    return token


def _to_placed_order(order):
    """The checkout already placed ``order``: its cart is spent, show the order."""
    if session.get(_TOKEN) == order.checkout_token:
        save_cart(session, [])
        session.pop(_TOKEN, None)
    flash(_("This order was already placed; here it is."), "info")
    return redirect(url_for("orders.show", token=order.token), 303)


def _why_total_changed(form: CheckoutForm, chosen, shown: int | None, total: int) -> str:
    money = lambda amount: format_money(amount, settings().currency, i18n.locale())  # noqa: E731
    if shown is None:
        return _(
            "Please check the total (%(total)s) and place the order again.", total=money(total)
        )
    why = ""
    if form.country.data != form.shown_country.data and chosen is not None:
        country = dict((c.value, c.label) for c in form.country.choices).get(
            form.country.data, form.country.data
        )
        if chosen.price == 0:
            why = " " + _(
                "You chose %(country)s: %(method)s there costs nothing.",
                country=country,
                method=chosen.name,
            )
        else:
            why = " " + _(
                "You chose %(country)s: %(method)s there costs %(price)s.",
                country=country,
                method=chosen.name,
                price=money(chosen.price),
            )
    elif chosen is not None:
        why = " " + _(
            "Shipping (%(method)s) costs %(price)s now.",
            method=chosen.name,
            price=money(chosen.price),
        )
    return (
        _("The total is now %(total)s (was %(shown)s).", total=money(total), shown=money(shown))
        + why
        + " "
        + _("Please check it and place the order again.")
    )


def _back_to_cart(review):
    """To the cart, saying why, if the cart cannot be checked out as it is; else None."""
    if review.problems:
        for problem in review.problems:
            flash(str(problem), "warning")
        save_cart(session, review.adjusted)
        return redirect(url_for("cart.show"), 303)
    if not review.lines:
        flash(_("Your cart is empty."), "warning")
        return redirect(url_for("cart.show"), 303)
    return None


def _complete(form: CheckoutForm, review, options) -> bool:
    """Validate the form and mark every problem at once (payment choice, address, consent):
    one round trip to fix them all."""
    valid = form.validate()
    if review.requires_shipping:
        missing = [f for f in form.ADDRESS_FIELDS if not (getattr(form, f).data or "").strip()]
        for name in missing:
            field = getattr(form, name)
            field.errors = [*field.errors, _("Needed to ship your order.")]
        if not options:
            form.country.errors = [*form.country.errors, _("We cannot ship to this country yet.")]
        valid = valid and not missing and bool(options)
    if (
        review.has_digital
        and not form.digital_consent.data
        and orders.refuses_without_consent(db_session())
    ):
        form.digital_consent.errors = [
            *form.digital_consent.errors,
            _(
                "Please confirm that delivery may start now and that you thereby lose your right "
                "of withdrawal, or remove the digital items from your cart."
            ),
        ]
        valid = False
    return valid


def _shown_total(form: CheckoutForm) -> int | None:
    """The total the page showed the customer (None if the form did not carry one)."""
    return int(form.shown_total.data) if (form.shown_total.data or "").isdigit() else None


def _order_request(form: CheckoutForm, review, shown: int | None) -> orders.PlaceOrder:
    def clean(name: str) -> str | None:
        value = (getattr(form, name).data or "").strip()
        return value or None

    return orders.PlaceOrder(
        cart=load_cart(session),
        country=form.country.data,
        payment_method=form.payment_method.data,
        currency=settings().currency,
        expiry_minutes=settings().order_expiry_minutes,
        shipping_rate_id=form.shipping_rate.data,
        checkout_token=form.checkout_token.data or _checkout_token(),
        shown_total=-1 if shown is None else shown,
        locale=i18n.locale(),
        digital_consent=bool(form.digital_consent.data) and review.has_digital,
        contact=orders.ContactDetails(
            email=clean("email"),
            name=clean("name"),
            street=clean("street"),
            postal_code=clean("postal_code"),
            city=clean("city"),
        ),
    )


@bp.route("", methods=["GET", "POST"])
def checkout():
    placed = orders.get_by_checkout_token(
        db_session(), request.form.get(_TOKEN, "") or session.get(_TOKEN) or ""
    )
    if placed is not None:
        return _to_placed_order(placed)
    # Shipping rates change rarely: share them between requests as briefly as the catalog.
    use_zones(
        db_session(), catalog_cache().get(("shipping-zones",), lambda: load_zones(db_session()))
    )
    use_tax_classes(
        db_session(), catalog_cache().get(("tax-classes",), lambda: load_tax_classes(db_session()))
    )
    review = review_cart(db_session(), load_cart(session))
    back = _back_to_cart(review)
    if back is not None:
        return back

    if not available_methods(payment_methods()):
        # Say so before the customer types an address for an order that cannot be paid.
        return render_template("checkout/closed.html", review=review), 503

    form = CheckoutForm()
    options = _prepare(form, review)
    if request.method == "GET" or form.refresh.data:
        return _render(form, review, options)
    if not _complete(form, review, options):
        return _render(form, review, options, 400)

    shown = _shown_total(form)
    try:
        order = orders.place_order(db_session(), _order_request(form, review, shown))
    except orders.AlreadyPlaced as exc:
        db_session().rollback()
        placed = orders.get_by_checkout_token(db_session(), exc.checkout_token)
        if placed is None:  # pragma: no cover - the other request rolled back after all
            flash(_("Please place your order again."), "warning")
            return redirect(url_for("checkout.checkout"), 303)
        return _to_placed_order(placed)
    except orders.TotalChanged as exc:
        db_session().rollback()
        chosen, _totals_now = _totals(form, review, options)
        flash(_why_total_changed(form, chosen, shown, exc.total), "warning")
        return _render(form, review, options, 409)
    except orders.CartChanged as exc:
        for problem in exc.problems:
            flash(str(problem), "warning")
        save_cart(session, exc.adjusted)
        return redirect(url_for("cart.show"), 303)
    except orders.ConsentMissing as exc:  # the view checked already; the service has the last word
        db_session().rollback()
        form.digital_consent.errors = [str(exc)]
        return _render(form, review, options, 400)
    except (orders.OutOfStock, orders.ShippingUnavailable, orders.EmptyCart) as exc:
        flash(str(exc), "error")
        db_session().rollback()
        return redirect(url_for("cart.show"), 303)
    save_cart(session, [])
    session.pop(_TOKEN, None)
    return redirect(url_for("orders.show", token=order.token), 303)
