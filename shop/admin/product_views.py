"""Admin pages for products, variants, stock and images."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from wtforms import SelectChoice

from shop.admin import catalog
from shop.admin.blueprint import bp
from shop.admin.forms import (
    ActionForm,
    DigitalFileForm,
    ImageForm,
    ProductForm,
    StockForm,
    VariantForm,
)
from shop.admin.images import ImageRejected, thumbnail_name
from shop.catalog.models import DIGITAL, Product, ProductImage, Variant
from shop.downloads import service as downloads
from shop.money import Money
from shop.web.context import db_session, settings


def _product(product_id: int) -> Product:
    product = catalog.get_product(db_session(), product_id)
    if product is None:
        abort(404)
    return product


def _product_form(product: Product | None = None, *, posted: bool = True) -> ProductForm:
    """The product form: as the merchant sent it when it was this form that was posted,
    otherwise (a page view, or another form on the page failed) as the product is stored."""
    from_product = product is not None and (request.method == "GET" or not posted)
    form = ProductForm(formdata=None, obj=product) if from_product else ProductForm()
    form.tax_class.choices = [
        SelectChoice(t.id, f"{t.name} ({t.rate_bp / 100:g} %)")
        for t in catalog.tax_classes(db_session())
    ]
    if from_product and product is not None:
        form.tax_class.data = product.tax_class_id
    return form


def _no_tax_class(form: ProductForm) -> None:
    # "Not a valid choice" says nothing when there is nothing to choose: the page says what to do.
    if not form.tax_class.choices:
        form.tax_class.errors = []


def _product_data(form: ProductForm) -> catalog.ProductData:
    return catalog.ProductData(
        title=form.title.data or "",
        slug=(form.slug.data or "").strip(),
        description=form.description.data or "",
        kind=form.kind.data,
        tax_class_id=form.tax_class.data,
        position=form.position.data or 0,
    )


def _variant_data(form: VariantForm) -> catalog.VariantData:
    return catalog.VariantData(
        sku=form.sku.data.strip(),
        label=form.label.data or "",
        price=form.price.data,
        active=bool(form.active.data),
        stock=None if form.unlimited.data else (form.stock.data or 0),
    )


@bp.get("/products")
def products():
    return render_template(
        "admin/products.html",
        products=catalog.all_products(db_session()),
        thumbnail_name=thumbnail_name,
    )


@bp.route("/products/new", methods=["GET", "POST"])
def product_new():
    form = _product_form()
    if not form.validate_on_submit():
        _no_tax_class(form)
        return render_template("admin/product_form.html", form=form, product=None), (
            400 if form.is_submitted() else 200
        )
    try:
        product = catalog.create_product(db_session(), _product_data(form))
    except catalog.CatalogError as exc:
        flash(str(exc), "error")
        return render_template("admin/product_form.html", form=form, product=None), 400
    flash(_("Product created. Add a variant with its price to put it on sale."), "success")
    return redirect(url_for("admin.product_edit", product_id=product.id), 303)


@bp.route("/products/<int:product_id>", methods=["GET", "POST"])
def product_edit(product_id: int):
    product = _product(product_id)
    form = _product_form(product)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                catalog.update_product(db_session(), product, _product_data(form))
            except catalog.CatalogError as exc:
                flash(str(exc), "error")
            else:
                flash(_("Product saved."), "success")
                return redirect(url_for("admin.product_edit", product_id=product.id), 303)
    return render_template(
        "admin/product_form.html",
        form=form,
        product=product,
        variant_form=VariantForm(),
        image_form=ImageForm(),
        action=ActionForm(),
        thumbnail_name=thumbnail_name,
        log=catalog.stock_log(db_session(), product),
        file_form=DigitalFileForm(),
        digital_file=downloads.file_for(db_session(), product.id),
    ), status


@bp.post("/products/<int:product_id>/archive")
def product_archive(product_id: int):
    product = _product(product_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    archive = product.active
    catalog.set_archived(product, archive)
    flash(
        _("Product archived: it is no longer in the shop.")
        if archive
        else "Product restored to the shop.",
        "success",
    )
    return redirect(url_for("admin.product_edit", product_id=product.id), 303)


@bp.post("/products/<int:product_id>/variants")
def variant_add(product_id: int):
    product = _product(product_id)
    form = VariantForm()
    if form.validate_on_submit():
        try:
            catalog.add_variant(
                db_session(), product, _variant_data(form), settings().currency, g.admin_user
            )
        except catalog.CatalogError as exc:
            flash(str(exc), "error")
        else:
            flash(_("Variant added."), "success")
            return redirect(url_for("admin.product_edit", product_id=product.id), 303)
    return _variant_errors(form, product)


def _variant_errors(form, product):
    for name, errors in form.errors.items():
        for e in errors:
            flash(f"{getattr(form, name).label.text}: {e}" if name != "csrf_token" else e, "error")
    db_session().rollback()
    return render_template(
        "admin/product_form.html",
        form=_product_form(product, posted=False),
        product=product,
        variant_form=form,
        image_form=ImageForm(),
        action=ActionForm(),
        thumbnail_name=thumbnail_name,
        log=catalog.stock_log(db_session(), product),
    ), 400


def _variant(product_id: int, variant_id: int) -> Variant:
    variant = db_session().get(Variant, variant_id)
    if variant is None or variant.product_id != product_id:
        abort(404)
    return variant


@bp.route("/products/<int:product_id>/variants/<int:variant_id>", methods=["GET", "POST"])
def variant_edit(product_id: int, variant_id: int):
    variant = _variant(product_id, variant_id)
    if request.method == "GET":
        form = VariantForm(obj=variant)
        form.price.data = _price_text(variant.price)
        form.stock.data = variant.on_hand  # the form's "Stock" is what is on the shelf
        form.unlimited.data = variant.on_hand is None
    else:
        form = VariantForm()
    stock_form = StockForm(prefix="adjust", formdata=None)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                catalog.update_variant(
                    db_session(), variant, _variant_data(form), settings().currency, g.admin_user
                )
            except catalog.CatalogError as exc:
                flash(str(exc), "error")
            else:
                flash(_("Variant saved."), "success")
                return redirect(url_for("admin.product_edit", product_id=product_id), 303)
    return render_template(
        "admin/variant_form.html",
        form=form,
        stock_form=stock_form,
        variant=variant,
        product=variant.product,
    ), status


def _price_text(amount: int) -> str:
    return str(Money(amount, settings().currency).to_decimal())


@bp.post("/products/<int:product_id>/variants/<int:variant_id>/stock")
def variant_stock(product_id: int, variant_id: int):
    variant = _variant(product_id, variant_id)
    form = StockForm(prefix="adjust")
    if not form.validate_on_submit() or (form.stock.data is None and not form.unlimited.data):
        flash(_("Enter the new stock level (or tick unlimited) and a reason."), "error")
        return redirect(
            url_for("admin.variant_edit", product_id=product_id, variant_id=variant_id), 303
        )
    catalog.set_stock(
        db_session(),
        variant,
        None if form.unlimited.data else form.stock.data,
        form.reason.data,
        g.admin_user,
    )
    flash(_("Stock updated."), "success")
    return redirect(url_for("admin.product_edit", product_id=product_id), 303)


@bp.post("/products/<int:product_id>/images")
def product_image_upload(product_id: int):
    product = _product(product_id)
    form = ImageForm()
    if not form.validate_on_submit():
        flash(_("Choose an image file to upload."), "error")
        return redirect(url_for("admin.product_edit", product_id=product.id), 303)
    try:
        catalog.add_image(
            db_session(),
            product,
            form.image.data.read(),
            form.alt.data or "",
            settings().instance_path / "uploads",
        )
    except ImageRejected as exc:
        flash(str(exc), "error")
        db_session().rollback()
        return render_template(
            "admin/product_form.html",
            form=_product_form(product, posted=False),
            product=product,
            variant_form=VariantForm(formdata=None),
            image_form=form,
            action=ActionForm(),
            thumbnail_name=thumbnail_name,
            log=catalog.stock_log(db_session(), product),
        ), 400
    flash(_("Image added."), "success")
    return redirect(url_for("admin.product_edit", product_id=product.id), 303)


@bp.post("/products/<int:product_id>/images/<int:image_id>/delete")
def product_image_delete(product_id: int, image_id: int):
    image = db_session().get(ProductImage, image_id)
    if image is None or image.product_id != product_id:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    catalog.remove_image(db_session(), image)
    flash(_("Image removed."), "success")
    return redirect(url_for("admin.product_edit", product_id=product_id), 303)


@bp.post("/products/<int:product_id>/file")
def product_file_upload(product_id: int):
    product = _product(product_id)
    form = DigitalFileForm()
    if product.kind != DIGITAL:
        flash(_("Only digital products deliver a file."), "error")
    elif not form.validate_on_submit():
        flash(_("Choose the file customers download."), "error")
    else:
        data = form.file.data.read()
        try:
            downloads.store_file(
                db_session(), product, data, form.file.data.filename or "", settings().instance_path
            )
        except ValueError as exc:
            flash(str(exc), "error")
        else:
            delivered = downloads.deliver_new_file(db_session(), product.id)
            flash(
                _("Download file saved.")
                + (
                    f" {delivered} paid order(s) of this product offer it on their order page now."
                    if delivered
                    else ""
                ),
                "success",
            )
    return redirect(url_for("admin.product_edit", product_id=product.id), 303)
