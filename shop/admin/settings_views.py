"""Admin pages: settings and health, tax classes, shipping zones and rates."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from shop.admin import branding, health
from shop.admin import store_settings as ss
from shop.admin.blueprint import bp
from shop.admin.forms import ActionForm
from shop.admin.images import ImageRejected
from shop.cart.models import ShippingRate, ShippingZone
from shop.catalog.models import TaxClass
from shop.money import Money
from shop.tax import rates as eu
from shop.web.context import db_session, payment_methods, settings
from shop.web.forms import ShopForm


class TaxForm(ShopForm):
    code = StringField(_l("Code"), validators=[InputRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[Length(max=100)])
    rate = StringField(_l("VAT rate (%)"), validators=[InputRequired(), Length(max=10)])
    category = SelectField(
        _l("Rate in other EU countries"),
        choices=[
            SelectChoice("standard", _l("Standard rate")),
            SelectChoice("reduced", _l("Reduced rate")),
            SelectChoice("super_reduced", _l("Super-reduced rate")),
            SelectChoice("zero", _l("Zero rate")),
        ],
        validate_choice=True,
    )
    country_rates = StringField(
        _l("Own rates per country (e.g. NL=9, FR=5.5)"), validators=[Length(max=2000)]
    )
    submit = SubmitField(_l("Save"))


class ZoneForm(ShopForm):
    name = StringField(_l("Zone name"), validators=[InputRequired(), Length(max=100)])
    countries = StringField(
        _l("Countries (two-letter codes, comma separated)"),
        validators=[InputRequired(), Length(max=2000)],
    )
    submit = SubmitField(_l("Save zone"))


class RateForm(ShopForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)])
    price = StringField(_l("Price (tax included)"), validators=[InputRequired(), Length(max=20)])
    free_over = StringField(_l("Free from order value (optional)"), validators=[Length(max=20)])
    tax_class = SelectField(_l("Tax class"), coerce=int)
    submit = SubmitField(_l("Save rate"))


def _errors(form) -> None:
    for errors in form.errors.values():
        for e in errors:
            flash(e, "error")


@bp.get("/settings")
def settings_page():
    s = settings()
    return render_template(
        "admin/settings.html",
        checks=health.checks(db_session(), s, methods=payment_methods()),
        retention=health.retention(s),
    )


# ---------------------------------------------------------------- tax classes


@bp.get("/settings/tax")
def tax_page():
    classes = ss.tax_classes(db_session())
    forms = {
        t.id: TaxForm(
            formdata=None,
            prefix=f"tax{t.id}",
            code=t.code,
            name=t.name,
            rate=f"{t.rate_bp / 100:g}",
            category=t.category,
            country_rates=eu.format_overrides(
                tuple((r.country, r.rate_bp) for r in t.country_rates)
            ),
        )
        for t in classes
    }
    return render_template(
        "admin/tax.html",
        classes=classes,
        forms=forms,
        new=TaxForm(formdata=None, prefix="new"),
        action=ActionForm(),
        eu_rates=eu.eu_rates(),
        scheme=settings().vat_scheme,
        fixed=settings().vat_fixed_price,
    )


def _save_tax(tax: TaxClass | None):
    form = TaxForm(prefix=f"tax{tax.id}" if tax else "new")
    if not form.validate_on_submit():
        _errors(form)
        return redirect(url_for("admin.tax_page"), 303)
    try:
        ss.save_tax_class(
            db_session(),
            tax,
            form.code.data,
            form.name.data,
            form.rate.data,
            form.category.data,
            form.country_rates.data or "",
        )
    except ss.SettingsError as exc:
        db_session().rollback()
        flash(str(exc), "error")
    else:
        flash(_("Tax class saved. It applies to orders placed from now on."), "success")
    return redirect(url_for("admin.tax_page"), 303)


@bp.post("/settings/tax")
def tax_add():
    return _save_tax(None)


def _tax(tax_id: int) -> TaxClass:
    tax = db_session().get(TaxClass, tax_id)
    if tax is None:
        abort(404)
    return tax


@bp.post("/settings/tax/<int:tax_id>")
def tax_edit(tax_id: int):
    return _save_tax(_tax(tax_id))


@bp.post("/settings/tax/<int:tax_id>/delete")
def tax_delete(tax_id: int):
    tax = _tax(tax_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        ss.delete_tax_class(db_session(), tax)
    except ss.SettingsError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Tax class deleted."), "success")
    return redirect(url_for("admin.tax_page"), 303)


# ---------------------------------------------------------------- shipping


def _amount(amount: int | None) -> str:
    return "" if amount is None else str(Money(amount, settings().currency).to_decimal())


def _rate_form(rate: ShippingRate | None = None, prefix: str = "", formdata=None) -> RateForm:
    if rate is None or formdata is not None:
        form = RateForm(formdata=formdata, prefix=prefix)
    else:
        form = RateForm(
            formdata=None,
            prefix=prefix,
            name=rate.name,
            price=_amount(rate.price),
            free_over=_amount(rate.free_over),
            tax_class=rate.tax_class_id,
        )
    form.tax_class.choices = [
        SelectChoice(t.id, f"{t.name} ({t.rate_bp / 100:g} %)")
        for t in ss.tax_classes(db_session())
    ]
    return form


@bp.get("/settings/shipping")
def shipping_page():
    zones = ss.zones(db_session())
    return render_template(
        "admin/shipping.html",
        zones=zones,
        action=ActionForm(),
        zone_forms={
            z.id: ZoneForm(formdata=None, prefix=f"zone{z.id}", name=z.name, countries=z.countries)
            for z in zones
        },
        rate_forms={r.id: _rate_form(r, f"rate{r.id}") for z in zones for r in z.rates},
        new_rates={z.id: _rate_form(None, f"newrate{z.id}") for z in zones},
        new_zone=ZoneForm(formdata=None, prefix="newzone"),
    )


def _zone(zone_id: int) -> ShippingZone:
    zone = db_session().get(ShippingZone, zone_id)
    if zone is None:
        abort(404)
    return zone


def _save_zone(zone: ShippingZone | None):
    form = ZoneForm(prefix=f"zone{zone.id}" if zone else "newzone")
    if not form.validate_on_submit():
        _errors(form)
        return redirect(url_for("admin.shipping_page"), 303)
    try:
        ss.save_zone(db_session(), zone, form.name.data, form.countries.data)
    except ss.SettingsError as exc:
        db_session().rollback()
        flash(str(exc), "error")
    else:
        flash(_("Shipping zone saved."), "success")
    return redirect(url_for("admin.shipping_page"), 303)


@bp.post("/settings/shipping/zones")
def zone_add():
    return _save_zone(None)


@bp.post("/settings/shipping/zones/<int:zone_id>")
def zone_edit(zone_id: int):
    return _save_zone(_zone(zone_id))


@bp.post("/settings/shipping/zones/<int:zone_id>/delete")
def zone_delete(zone_id: int):
    zone = _zone(zone_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    ss.delete_zone(db_session(), zone)
    flash(_("Shipping zone deleted."), "success")
    return redirect(url_for("admin.shipping_page"), 303)


def _save_rate(zone: ShippingZone, rate: ShippingRate | None):
    form = _rate_form(None, f"rate{rate.id}" if rate else f"newrate{zone.id}", request.form)
    if not form.validate_on_submit():
        _errors(form)
        return redirect(url_for("admin.shipping_page"), 303)
    try:
        ss.save_rate(
            db_session(),
            zone,
            rate,
            form.name.data,
            form.price.data,
            form.free_over.data,
            form.tax_class.data,
            settings().currency,
        )
    except ss.SettingsError as exc:
        db_session().rollback()
        flash(str(exc), "error")
    else:
        flash(_("Shipping rate saved."), "success")
    return redirect(url_for("admin.shipping_page"), 303)


@bp.post("/settings/shipping/zones/<int:zone_id>/rates")
def rate_add(zone_id: int):
    return _save_rate(_zone(zone_id), None)


def _rate(rate_id: int) -> ShippingRate:
    rate = db_session().get(ShippingRate, rate_id)
    if rate is None:
        abort(404)
    return rate


@bp.post("/settings/shipping/rates/<int:rate_id>")
def rate_edit(rate_id: int):
    rate = _rate(rate_id)
    return _save_rate(rate.zone, rate)


@bp.post("/settings/shipping/rates/<int:rate_id>/delete")
def rate_delete(rate_id: int):
    rate = _rate(rate_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    db_session().delete(rate)
    flash(_("Shipping rate deleted."), "success")
    return redirect(url_for("admin.shipping_page"), 303)


# ---------------------------------------------------------------- logo and favicon


class BrandingForm(ShopForm):
    logo = FileField(_l("Logo (shown in the shop's header next to its name)"))
    favicon = FileField(_l("Favicon (the small icon of browser tabs; square works best)"))
    submit = SubmitField(_l("Upload"))


def _uploads():
    return settings().instance_path / "uploads"


@bp.route("/settings/branding", methods=["GET", "POST"])
def branding_page():
    form = BrandingForm()
    status = 200
    if form.validate_on_submit():
        logo, favicon = form.logo.data, form.favicon.data
        if not logo and not favicon:
            flash(_("Choose a logo, a favicon or both."), "error")
            status = 400
        else:
            try:
                if logo:
                    branding.save_logo(_uploads(), logo.read())
                if favicon:
                    branding.save_favicon(_uploads(), favicon.read())
            except ImageRejected as exc:
                flash(str(exc), "error")
                status = 400
            else:
                flash(_("Saved: the shop shows it now."), "success")
                return redirect(url_for("admin.branding_page"), 303)
    elif form.is_submitted():
        status = 400
        _errors(form)
    return render_template(
        "admin/branding.html", form=form, action=ActionForm(), current=branding.current(_uploads())
    ), status


@bp.post("/settings/branding/remove")
def branding_remove():
    if not ActionForm().validate_on_submit():
        abort(400)
    branding.remove(_uploads())
    flash(_("Logo and favicon removed: the shop shows its name and the default icon."), "success")
    return redirect(url_for("admin.branding_page"), 303)
