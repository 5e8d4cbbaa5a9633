"""Digital goods (issue 14): a file added later reaches orders already paid; a replaced file
leaves the disk; the demo's e-books deliver real (small, generated) files."""

from __future__ import annotations

import io
import zipfile

from sqlalchemy import select

from shop.downloads import service as downloads
from shop.downloads.models import DigitalFile, DownloadGrant
from shop.orders.models import Order
from tests.admin.conftest import buy
from tests.admin.test_downloads import BOOK, _upload_book
from tests.browser import Browser


def test_adding_a_file_gives_paid_orders_their_download(admin, database, client, settings):
    order_url = buy(client, slug="small-hours", email=None)
    assert "Status: Paid" in Browser(client).get(order_url).text  # no file yet: nothing to send
    _, page = _upload_book(admin, database)
    with database.job_session() as session:
        order = session.scalar(select(Order))
        assert order.status == "fulfilled"  # before: the admin promised it, nothing happened
        assert session.scalar(select(DownloadGrant).where(DownloadGrant.order_id == order.id))
    b = Browser(client)
    b.get(order_url)
    form = b.form("form[action^='/downloads/']")
    response = client.post(
        form["action"],
        data={"csrf_token": form.find("input", attrs={"name": "csrf_token"})["value"]},
    )
    assert response.data == BOOK


def test_replacing_a_file_deletes_the_old_one(admin, database, settings):
    _upload_book(admin, database)
    with database.job_session() as session:
        old = session.scalar(select(DigitalFile)).stored_name
    assert (downloads.folder(settings.instance_path) / old).is_file()
    _upload_book(admin, database, data=b"second edition", name="small hours 2.pdf")
    with database.job_session() as session:
        new = session.scalar(select(DigitalFile)).stored_name
    files = {p.name for p in downloads.folder(settings.instance_path).iterdir()}
    assert new in files and old not in files


def test_demo_ebooks_deliver_generated_files(database, client, settings):
    from shop.demo import seed_ebook_files

    assert seed_ebook_files(database, settings) == 2  # what `shop demo` does after the catalog
    assert seed_ebook_files(database, settings) == 0  # and only once
    with database.job_session() as session:
        records = session.scalars(select(DigitalFile)).all()
        assert len(records) == 2
        for record in records:
            data = (downloads.folder(settings.instance_path) / record.stored_name).read_bytes()
            with zipfile.ZipFile(io.BytesIO(data)) as epub:
                assert epub.read("mimetype") == b"application/epub+zip"
            assert record.original_name.endswith(".epub") and len(data) < 20_000
    page = Browser(client).get(buy(client, slug="small-hours", email=None))
    assert "Status: Fulfilled" in page.text and page.soup.select("form[action^='/downloads/']")
