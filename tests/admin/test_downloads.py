"""Digital goods: the merchant uploads the file; a paid order is fulfilled automatically and
its page offers an expiring, count-limited download; nothing is public."""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import select

from shop.catalog.models import Product
from shop.downloads.models import DigitalFile, DownloadGrant
from shop.orders import service
from shop.orders.models import Order
from tests.admin.conftest import buy
from tests.browser import Browser

BOOK = b"%PDF-1.7\n" + b"The Small Hours, chapter one. " * 200


def _upload_book(admin, database, data=BOOK, name="small hours (final).pdf", expect=200):
    with database.job_session() as session:
        product_id = session.scalar(select(Product.id).where(Product.slug == "small-hours"))
    token = admin.get(f"/admin/products/{product_id}").soup.select_one(
        "form[action$='/file'] input[name=csrf_token]"
    )["value"]
    response = admin.client.post(
        f"/admin/products/{product_id}/file",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == expect
    return product_id, response.get_data(as_text=True)


def _press_download(b: Browser, expect=200):
    form = b.form("form[action^='/downloads/']")
    return b.client.post(
        form["action"],
        data={"csrf_token": form.find("input", attrs={"name": "csrf_token"})["value"]},
    ), form["action"]


def test_paid_digital_order_downloads_and_is_fulfilled(admin, database, client, settings):
    product_id, page = _upload_book(admin, database)
    assert "Download file saved." in page and "small hours (final).pdf" in page
    with database.job_session() as session:
        stored = session.scalar(select(DigitalFile)).stored_name
    assert BOOK not in b"".join(
        p.read_bytes() for p in (settings.instance_path / "uploads").iterdir()
    )
    assert client.get(f"/media/../downloads/{stored}").status_code == 404
    assert client.get(f"/media/{stored}").status_code == 404

    order_url = buy(client, slug="small-hours", email=None)
    b = Browser(client)
    page = b.get(order_url)
    assert "Status: Fulfilled" in page.text
    assert "Downloads ready: fulfilled automatically" in page.text
    assert "5 downloads left" in page.text
    response, action = _press_download(b)
    assert response.status_code == 200 and response.data == BOOK
    assert (
        'attachment; filename="small hours (final).pdf"' in response.headers["Content-Disposition"]
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert "4 downloads left" in b.get(order_url).text

    for _ in range(4):
        assert _press_download(b)[0].status_code == 200
    page = b.get(order_url)
    assert "used up" in page.text and not page.soup.select("form[action^='/downloads/']")
    # This order holds no personal data, so its page has no form left: any page's token will do.
    csrf = b.get("/products/small-hours").soup.find("input", attrs={"name": "csrf_token"})["value"]
    response = client.post(action, data={"csrf_token": csrf})
    assert response.status_code == 410 and b"as often as the link allows" in response.data


def test_links_expire_and_refunds_end_them(admin, database, client):
    _upload_book(admin, database)
    order_url = buy(client, slug="small-hours", email=None)
    b = Browser(client)
    b.get(order_url)
    form = b.form("form[action^='/downloads/']")
    csrf = form.find("input", attrs={"name": "csrf_token"})["value"]
    with database.job_session() as session:
        for grant in session.scalars(select(DownloadGrant)):
            grant.expires_at -= timedelta(days=8)
    response = client.post(form["action"], data={"csrf_token": csrf})
    assert response.status_code == 410 and b"expired" in response.data
    with database.job_session() as session:
        for grant in session.scalars(select(DownloadGrant)):
            grant.expires_at += timedelta(days=30)
        order = session.scalar(select(Order))
        service.record_refund(session, order, order.amount_paid)
    response = client.post(form["action"], data={"csrf_token": csrf})
    assert response.status_code == 410 and b"no longer includes" in response.data
    assert not b.get(order_url).soup.select("form[action^='/downloads/']")
    assert client.post("/downloads/not-a-token", data={"csrf_token": csrf}).status_code == 410
    assert client.post(form["action"]).status_code == 400  # no CSRF token


def test_without_a_file_the_order_waits_for_the_merchant(client, database):
    order_url = buy(client, slug="small-hours", email=None)
    page = Browser(client).get(order_url)
    assert "Status: Paid" in page.text and "Your downloads" not in page.text
    with database.job_session() as session:
        assert session.scalar(select(Order.status)) == "paid"


def test_unpaid_orders_offer_nothing_and_mixed_orders_still_ship(admin, database, client):
    _upload_book(admin, database)
    unpaid = buy(client, slug="small-hours", email=None, pay=False)
    assert "Your downloads" not in Browser(client).get(unpaid).text
    with database.job_session() as session:
        assert session.scalars(select(DownloadGrant)).all() == []

    b = Browser(client)
    for slug in ("small-hours", "tote-bag"):
        b.get(f"/products/{slug}")
        b.submit(b.form(f"form[action$='/cart/add/{slug}']"))
    b.get("/checkout")
    page = b.submit(
        b.form("main form"),
        {
            "name": "A",
            "street": "S 1",
            "postal_code": "1",
            "city": "C",
            "country": "DE",
            "digital_consent": "y",
        },
        button="Place order",
    )
    page = b.submit(b.form(".demo-pay form"))
    assert "Status: Paid" in page.text and "Your downloads" in page.text


def test_physical_products_take_no_file(admin, database):
    with database.job_session() as session:
        product_id = session.scalar(select(Product.id).where(Product.slug == "tote-bag"))
    page = admin.get(f"/admin/products/{product_id}")
    assert not page.soup.select("form[action$='/file']")
    csrf = page.soup.find("input", attrs={"name": "csrf_token"})["value"]
    response = admin.client.post(
        f"/admin/products/{product_id}/file",
        data={"csrf_token": csrf, "file": (io.BytesIO(b"x"), "x.pdf")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "Only digital products deliver a file." in response.get_data(as_text=True)
    with database.job_session() as session:
        assert session.scalars(select(DigitalFile)).all() == []
