"""Legal pages: written by the merchant, linked in every footer and at the checkout; the
privacy notice lists the data inventory."""

from __future__ import annotations

from shop.legal.service import customer_notice, inventory
from tests.browser import Browser


def test_footer_links_every_legal_page(client):
    b = Browser(client)
    for url in ["/", "/products/tote-bag", "/cart", "/legal/terms"]:
        page = b.get(url)
        links = {
            a.get_text(): a["href"] for a in page.soup.select("footer nav[aria-label=Legal] a")
        }
        assert links == {
            "Imprint": "/legal/imprint",
            "Terms": "/legal/terms",
            "Returns and withdrawal": "/legal/withdrawal",
            "Privacy": "/legal/privacy",
        }
    assert client.get("/legal/nonsense").status_code == 404


def test_checkout_links_terms_withdrawal_and_privacy(client):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    page = b.get("/checkout")
    note = page.soup.select_one("main form .legal-note")
    hrefs = {a["href"] for a in note.find_all("a")}
    assert hrefs == {"/legal/terms", "/legal/withdrawal", "/legal/privacy"}


def test_merchant_writes_the_imprint_and_terms(admin, client):
    b = admin
    b.get("/admin/legal")
    assert "not written yet" in b.page.text
    b.follow("Imprint")
    page = b.submit(
        b.form("main form"),
        {
            "legal_name": "Harbour Prints GmbH",
            "address": "Kai 1\n20457 Hamburg",
            "vat_id": "DE123456789",
            "registration": "HRB 12345, Amtsgericht Hamburg",
            "email": "hello@harbour.example",
            "body": "Managing director: A. Smith",
        },
    )
    assert "Imprint published." in page.messages()
    public = Browser(client).get("/legal/imprint")
    assert "Harbour Prints GmbH" in public.text and "DE123456789" in public.text
    assert "HRB 12345, Amtsgericht Hamburg" in public.text
    assert public.soup.select_one("dl.imprint dd br") is not None  # the address keeps its lines

    b.get("/admin/legal/terms")
    b.submit(b.form("main form"), {"body": "1. Scope\n\n2. <b>Prices</b> include VAT."})
    terms = Browser(client).get("/legal/terms")
    assert len(terms.soup.select("article p")) >= 2
    assert "<b>" not in terms.html and "&lt;b&gt;Prices&lt;/b&gt;" in terms.html  # text, not HTML
    assert admin.client.get("/admin/legal/nonsense").status_code == 404


def test_privacy_notice_lists_the_inventory(client):
    items = inventory()
    assert {i.column for i in items} >= {"order_contacts.email", "order_contacts.name"}
    notice = customer_notice()
    assert {i.column for i in items} <= {c for entry in notice for c in entry.columns}
    page = Browser(client).get("/legal/privacy")
    entries = page.soup.select("main ul.notice")[0].select("li")
    assert len(entries) == len(notice)
    text = page.text
    assert "Your email address, if you give one" in text and "we store no IP addresses" in text
    assert "as above" not in text  # each entry reads on its own
