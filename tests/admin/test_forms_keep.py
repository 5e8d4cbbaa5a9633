"""The admin keeps what the merchant typed (issue 14): a failed form comes back whole, and the
papercuts say what to do instead of "Not a valid choice" or a bare 413."""

from __future__ import annotations

from sqlalchemy import select

from shop.catalog.models import Product, TaxClass
from tests.admin.test_products import _png_bomb, _upload
from tests.browser import Browser

DESCRIPTION = "A novel about a night-shift baker.\n\nEPUB and PDF, no DRM."


def _ebook(b: Browser, database) -> int:
    with database.job_session() as s:
        reduced = s.scalar(select(TaxClass).where(TaxClass.code == "reduced")).id
    b.get("/admin/products/new")
    page = b.submit(
        b.form("main form"),
        {
            "title": "Night Bakery",
            "description": DESCRIPTION,
            "kind": "digital",
            "tax_class": str(reduced),
        },
    )
    assert "Product created" in " ".join(page.messages())
    return int(page.url.rsplit("/", 1)[1])


def _product_form_shows_the_product(page, reduced_id: int) -> None:
    form = page.soup.select_one("main form")  # the product's own form comes first
    assert form.select_one("input[name=title]")["value"] == "Night Bakery"
    assert form.select_one("textarea[name=description]").get_text().strip() == DESCRIPTION
    assert form.select_one("select[name=kind] option[selected]")["value"] == "digital"
    assert form.select_one("select[name=tax_class] option[selected]")["value"] == str(reduced_id)


def _saved_as_typed(database, product_id: int, reduced_id: int) -> None:
    with database.job_session() as s:
        p = s.get(Product, product_id)
        assert (p.title, p.kind, p.tax_class_id, p.description.replace("\r\n", "\n")) == (
            "Night Bakery",
            "digital",
            reduced_id,
            DESCRIPTION,
        )


def test_a_duplicate_sku_keeps_the_product_as_it_was(admin, database):
    product_id = _ebook(admin, database)
    with database.job_session() as s:
        reduced = s.scalar(select(TaxClass).where(TaxClass.code == "reduced")).id
    admin.get(f"/admin/products/{product_id}")
    page = admin.submit(
        admin.form("form[action$='/variants']"),
        {"sku": "EBOOK-SMALL", "label": "EPUB", "price": "9.99"},
        expect=400,
    )
    assert "already used" in page.text
    # The variant form keeps what was typed...
    assert (
        admin.form("form[action$='/variants']").select_one("input[name=price]")["value"] == "9.99"
    )
    # ...and the product form shows the product, not an empty physical 19 % one.
    _product_form_shows_the_product(page, reduced)
    admin.submit(admin.form("main form"), {"title": "Night Bakery"})  # "retype the title, save"
    _saved_as_typed(database, product_id, reduced)


def test_a_rejected_image_keeps_the_product_as_it_was(admin, database):
    product_id = _ebook(admin, database)
    with database.job_session() as s:
        reduced = s.scalar(select(TaxClass).where(TaxClass.code == "reduced")).id
    response = _upload(admin, product_id, b"not an image", "x.jpg", expect=400)
    admin.page = type(admin.page)(response, f"/admin/products/{product_id}")
    _product_form_shows_the_product(admin.page, reduced)
    admin.submit(admin.form("main form"), {"title": "Night Bakery"})
    _saved_as_typed(database, product_id, reduced)


def test_a_failed_product_form_keeps_kind_and_tax_class(admin, database):
    product_id = _ebook(admin, database)
    with database.job_session() as s:
        reduced = s.scalar(select(TaxClass).where(TaxClass.code == "reduced")).id
    admin.get(f"/admin/products/{product_id}")
    page = admin.submit(admin.form("main form"), {"slug": "Not A Slug!"}, expect=400)
    _product_form_shows_the_product(page, reduced)


def test_without_a_tax_class_the_product_page_says_create_one_first(admin, database):
    # A fresh shop has no tax class; products need one.
    from sqlalchemy import delete

    from shop.cart.models import ShippingRate
    from shop.catalog.models import ProductImage, StockAdjustment, Variant
    from shop.downloads.models import DigitalFile

    with database.job_session() as s:
        for model in (
            DigitalFile,
            ProductImage,
            StockAdjustment,
            Variant,
            Product,
            ShippingRate,
            TaxClass,
        ):
            s.execute(delete(model))
    page = admin.get("/admin/products/new")
    assert "Create a tax class first" in page.text
    assert page.soup.select_one("a[href='/admin/settings/tax']") is not None
    page = admin.submit(admin.form("main form"), {"title": "Apron"}, expect=400)
    assert "Not a valid choice" not in page.text and "Create a tax class first" in page.text


def test_an_oversized_upload_states_the_limit_and_links_back(admin, database, settings):
    product_id = _ebook(admin, database)
    too_big = b"\xff\xd8" + b"\x00" * (settings.admin_upload_mb * 1024 * 1024 + 10)
    response = _upload(admin, product_id, too_big, "huge.jpg", expect=413)
    text = response.get_data(as_text=True)
    assert f"at most {settings.admin_upload_mb} MB" in text
    assert f'href="/admin/products/{product_id}"' in text


def test_a_decompression_bomb_is_called_too_large(admin, database):
    product_id = _ebook(admin, database)
    response = _upload(admin, product_id, _png_bomb(), "bomb.png", expect=400)
    text = response.get_data(as_text=True)
    assert "too large" in text and "not an image we can read" not in text
