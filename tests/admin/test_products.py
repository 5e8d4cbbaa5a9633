"""Products, variants, stock log and image uploads, driven through the admin pages."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image
from sqlalchemy import select

from shop.admin.images import MAX_PIXELS
from shop.catalog.models import Product, ProductImage, StockAdjustment, Variant
from tests.browser import Browser


def _jpeg_with_gps(size=(640, 480)) -> bytes:
    image = Image.new("RGB", size, "red")
    image.paste((0, 0, 255), (0, 0, size[0] // 2, size[1]))  # left half blue, to see rotation
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 0.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"secret comment")
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the test file does carry GPS
    return data


def _png_bomb(width=20000, height=20000) -> bytes:
    """A tiny PNG whose header claims a huge canvas (a decompression bomb)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * (width + 1) * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def _new_product(b: Browser, title="Linen apron", kind="physical") -> int:
    b.get("/admin/products")
    b.follow("New product")
    page = b.submit(
        b.form("main form"), {"title": title, "description": "Heavy linen.", "kind": kind}
    )
    assert "Product created" in " ".join(page.messages())
    return int(page.url.rsplit("/", 1)[1])


def _upload(b: Browser, product_id: int, data: bytes, filename: str, expect=200):
    token = b.get(f"/admin/products/{product_id}").soup.select_one(
        "form[action$='/images'] input[name=csrf_token]"
    )["value"]
    response = b.client.post(
        f"/admin/products/{product_id}/images",
        data={"csrf_token": token, "alt": "An apron", "image": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == expect, (
        response.status_code,
        response.get_data(as_text=True)[:500],
    )
    return response


def test_create_edit_archive_a_product_with_variants(admin, database, client):
    b = admin
    product_id = _new_product(b)
    page = b.submit(
        b.form("form[action$='/variants']"),
        {"sku": "APRON-M", "label": "Medium", "price": "34.90", "stock": "5"},
    )
    assert "Variant added." in page.messages()
    with database.job_session() as session:
        variant = session.scalar(select(Variant).where(Variant.sku == "APRON-M"))
        assert (variant.price, variant.on_hand, variant.active) == (3490, 5, True)
        product = session.get(Product, product_id)
        assert product.slug == "linen-apron" and product.active
        variant_id = variant.id

    # On sale in the storefront.
    shop_page = Browser(client).get("/products/linen-apron")
    assert "Linen apron" in shop_page.text and "34.90" in shop_page.text

    # Prices with too many decimals or letters are explained, nothing is saved.
    page = b.submit(
        b.form("form[action$='/variants']"),
        {"sku": "APRON-L", "label": "Large", "price": "34.999", "stock": "1"},
        expect=400,
    )
    assert any("34.999" in m for m in page.messages())
    page = b.submit(
        b.form("form[action$='/variants']"),
        {"sku": "apron-m", "label": "Dup", "price": "1", "stock": "1"},
        expect=400,
    )
    assert any("already used" in m for m in page.messages())

    # Edit the variant; then set its stock with a reason: both logged.
    b.get(f"/admin/products/{product_id}/variants/{variant_id}")
    assert b.form("main form").find(attrs={"name": "price"})["value"] == "34.90"
    b.submit(b.form("main form"), {"price": "36", "stock": "7"})
    b.get(f"/admin/products/{product_id}/variants/{variant_id}")
    page = b.submit(
        b.form("form[action$='/stock']"),
        {"adjust-stock": "3", "adjust-reason": "Stocktake: 4 damaged"},
    )
    assert "Stocktake: 4 damaged" in page.text
    b.get(f"/admin/products/{product_id}/variants/{variant_id}")
    b.submit(
        b.form("form[action$='/stock']"),
        {"adjust-unlimited": "y", "adjust-reason": "Made to order"},
    )
    with database.job_session() as session:
        variant = session.get(Variant, variant_id)
        assert (variant.price, variant.on_hand) == (3600, None)
        log = session.scalars(
            select(StockAdjustment)
            .where(StockAdjustment.variant_id == variant_id)
            .order_by(StockAdjustment.id)
        ).all()
        assert [(e.stock_before, e.stock_after) for e in log] == [
            (None, 5),
            (5, 7),
            (7, 3),
            (3, None),
        ]
        assert log[2].reason == "Stocktake: 4 damaged" and log[2].admin_user_id is not None

    # Archive: gone from the shop, still in the admin; restore brings it back.
    b.get(f"/admin/products/{product_id}")
    page = b.submit(b.form("form[action$='/archive']"))
    assert "Product archived" in " ".join(page.messages()), page.text[:600]
    assert Browser(client).client.get("/products/linen-apron").status_code == 404
    assert "Archived" in b.get("/admin/products").text
    b.get(f"/admin/products/{product_id}")
    b.submit(b.form("form[action$='/archive']"))
    assert client.get("/products/linen-apron").status_code == 200


def test_product_form_errors_are_explained(admin):
    b = admin
    b.get("/admin/products/new")
    page = b.submit(b.form("main form"), {"title": ""}, expect=400)
    assert page.soup.select(".error")
    page = b.submit(b.form("main form"), {"title": "Tote", "slug": "tote-bag"}, expect=400)
    assert any("tote-bag" in m for m in page.messages())  # the demo's tote bag has it
    page = b.submit(b.form("main form"), {"title": "X", "slug": "Not A Slug!"}, expect=400)
    assert "lower-case letters" in page.text
    assert admin.client.get("/admin/products/999999").status_code == 404


def test_image_upload_strips_metadata_and_makes_a_thumbnail(admin, database, settings, client):
    b = admin
    product_id = _new_product(b)
    _upload(b, product_id, _jpeg_with_gps(), "holiday.jpg")
    with database.job_session() as session:
        image = session.scalar(select(ProductImage).where(ProductImage.product_id == product_id))
        filename = image.filename
    assert filename.startswith("p-") and filename.endswith(".jpg") and "holiday" not in filename
    uploads = settings.instance_path / "uploads"
    stored = Image.open(uploads / filename)
    assert stored.format == "JPEG"
    assert not stored.getexif() and "comment" not in stored.info and "exif" not in stored.info
    assert b"SpyCam" not in (uploads / filename).read_bytes()
    assert stored.size == (480, 640)  # the EXIF orientation was applied before dropping it
    assert stored.getpixel((240, 10))[2] > 200  # blue (the left half) is now on top
    thumb = Image.open(uploads / filename.replace(".jpg", "-thumb.jpg"))
    assert max(thumb.size) == 480 and thumb.size[0] < thumb.size[1]
    served = client.get(f"/media/{filename}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert filename.replace(".jpg", "-thumb.jpg") in b.get(f"/admin/products/{product_id}").html


def test_transparent_png_stays_png_and_large_uploads_are_allowed(admin, settings):
    product_id = _new_product(admin)
    noise = Image.frombytes("RGBA", (800, 800), os.urandom(800 * 800 * 4))
    out = io.BytesIO()
    noise.save(out, "PNG")
    assert len(out.getvalue()) > 1024 * 1024  # above the shop's usual 1 MB form limit
    _upload(admin, product_id, out.getvalue(), "noise.png")
    files = sorted(p.name for p in (settings.instance_path / "uploads").glob("p-*.png"))
    assert (
        len(files) == 2 and Image.open(settings.instance_path / "uploads" / files[0]).mode == "RGBA"
    )


def test_uploads_that_are_not_images_are_refused(admin, database, settings):
    product_id = _new_product(admin)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    cases = [
        (b"%PDF-1.4 not an image", "photo.jpg"),
        (svg, "logo.png"),
        (b"GIF89a" + b"\x00" * 20, "broken.gif"),
        (_jpeg_with_gps()[:200], "truncated.jpg"),
        (_png_bomb(), "bomb.png"),
        (b"", "empty.jpg"),
    ]
    for data, name in cases:
        response = _upload(admin, product_id, data, name, expect=400)
        text = response.get_data(as_text=True)
        assert (
            "not an image we can read" in text or "too large" in text or "Choose an image" in text
        ), name
    bmp = io.BytesIO()
    Image.new("RGB", (10, 10)).save(bmp, "BMP")
    response = _upload(admin, product_id, bmp.getvalue(), "pic.bmp", expect=400)
    assert "Only JPEG, PNG, WebP and GIF" in response.get_data(as_text=True)
    with database.job_session() as session:
        assert (
            session.scalars(select(ProductImage).where(ProductImage.product_id == product_id)).all()
            == []
        )
    assert not list((settings.instance_path / "uploads").glob("p-*"))
    assert MAX_PIXELS < 20000 * 20000


def test_upload_size_limit(admin, settings):
    product_id = _new_product(admin)
    too_big = b"\xff\xd8" + b"\x00" * (settings.admin_upload_mb * 1024 * 1024 + 10)
    _upload(admin, product_id, too_big, "huge.jpg", expect=413)
