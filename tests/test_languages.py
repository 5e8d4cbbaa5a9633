"""Languages: the customer's choice by path prefix, else Accept-Language, else SHOP_LOCALE."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from tests.browser import Browser
from tests.conftest import make_test_app


def _soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def _lang(response) -> str:
    return _soup(response).html["lang"]


def _h1(response) -> str:
    return _soup(response).h1.get_text(" ", strip=True)


@pytest.fixture
def german_store(db_url, tmp_path):
    """A German merchant (the demo's setting): SHOP_LOCALE de_DE."""
    from shop.demo import seed_demo

    app = make_test_app(db_url, tmp_path / "instance-de", locale="de_DE")
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    yield app
    app.extensions["shop.db"].dispose()


@pytest.mark.parametrize(
    "prefix, lang, heading",
    [
        ("/de", "de", "Ihr Warenkorb"),
        ("/nl", "nl", "Uw winkelwagen"),
        ("/fr", "fr", "Votre panier"),
        ("/en", "en", "Your cart"),
    ],
)
def test_the_path_prefix_chooses_the_language(client, prefix, lang, heading):
    response = client.get(f"{prefix}/cart", headers={"Accept-Language": "da;q=0.9, en;q=0.1"})
    assert response.status_code == 200
    assert _lang(response) == lang
    assert _h1(response) == heading
    # A chosen language is part of the address, not negotiated.
    assert "Accept-Language" not in response.headers.get("Vary", "")


def test_links_and_redirects_keep_the_prefix(client):
    page = _soup(client.get("/nl/"))
    assert page.select_one("a.brand")["href"] == "/nl/"
    assert page.find("a", string="Winkelwagen")["href"] == "/nl/cart"
    assert page.find("a", href="/nl/legal/imprint") is not None
    client.get("/nl/cart")  # the session cookie, which carries the cart and the CSRF token
    product = _soup(client.get("/nl/products/small-hours"))
    form = product.select_one("form[action$='/cart/add/small-hours']")
    assert form["action"] == "/nl/cart/add/small-hours"
    data = {i["name"]: i.get("value", "") for i in form.select("input[name]")}
    response = client.post(form["action"], data=data)
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/nl/cart") or response.headers[
        "Location"
    ].startswith("/nl/")


def test_without_a_prefix_accept_language_chooses_among_shipped_languages(client):
    response = client.get("/cart", headers={"Accept-Language": "da, nl-BE;q=0.8, en;q=0.5"})
    assert _lang(response) == "nl"
    assert _h1(response) == "Uw winkelwagen"
    assert "Accept-Language" in response.headers["Vary"]
    # A language the shop does not speak is passed over, not half-shown.
    response = client.get("/cart", headers={"Accept-Language": "da, sv;q=0.5"})
    assert _lang(response) == "en" and _h1(response) == "Your cart"


def test_without_prefix_or_accept_language_the_store_language_is_used(client, german_store):
    assert _lang(client.get("/cart")) == "en"
    german = german_store.test_client()
    response = german.get("/cart")
    assert _lang(response) == "de"
    assert _h1(response) == "Ihr Warenkorb"
    # The customer's browser still wins over the store's default.
    response = german.get("/cart", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert _lang(response) == "en" and _h1(response) == "Your cart"


def test_footer_switch_links_to_the_same_page_in_each_language(client):
    page = _soup(client.get("/de/products/small-hours?x=1"))
    switch = page.find("nav", attrs={"aria-label": "Sprache"})
    links = {a["hreflang"]: a for a in switch.find_all("a")}
    assert set(links) >= {"en", "de", "nl"}
    assert links["nl"]["href"] == "/nl/products/small-hours?x=1"
    assert links["en"]["href"] == "/en/products/small-hours?x=1"
    assert links["de"].get("aria-current") == "true"
    assert links["nl"].get_text() == "Nederlands" and links["nl"]["lang"] == "nl"
    # The switch is plain links: no script, and no cookie is set for the choice.
    response = client.get(links["nl"]["href"])
    assert response.status_code == 200 and _lang(response) == "nl"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "path",
    ["/", "/cart", "/products/small-hours", "/legal/imprint", "/legal/privacy", "/does-not-exist"],
)
@pytest.mark.parametrize("lang", ["de", "nl", "fr"])
def test_html_lang_matches_the_text_on_every_customer_page(client, path, lang):
    response = client.get(f"/{lang}{path}")
    assert _lang(response) == lang
    english = _soup(client.get(f"/en{path}"))
    translated = _soup(response)
    # The shared frame is translated, not only the lang attribute.
    assert translated.select_one("a.skip").get_text() != english.select_one("a.skip").get_text()
    assert translated.footer.get_text() != english.footer.get_text()


def test_admin_stays_english_under_any_language(client):
    response = client.get("/admin/login", headers={"Accept-Language": "de"})
    assert _lang(response) == "en"


def test_prices_follow_the_language(client):
    assert "€39.00" in client.get("/en/products/harbour-at-dawn").get_data(as_text=True)
    assert "39,00\xa0€" in client.get("/de/products/harbour-at-dawn").get_data(as_text=True)
    assert "€\xa039,00" in client.get("/nl/products/harbour-at-dawn").get_data(as_text=True)
    assert "39,00\xa0€" in client.get("/fr/products/harbour-at-dawn").get_data(as_text=True)


def test_a_german_purchase_places_a_german_order(client, database):
    from sqlalchemy import select

    from shop.orders.models import Order

    b = Browser(client)
    b.get("/de/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.get("/de/checkout")
    page = b.submit(b.form("main form"), {"country": "AT", "email": "", "digital_consent": "y"})
    assert page.url.startswith("/de/orders/")
    assert _lang(page.response) == "de"
    # The order's history: notes the services store as message ids are shown translated.
    history = page.soup.select_one("ol.history").get_text(" ")
    assert "Bestellung aufgegeben" in history and "Order placed" not in history
    assert "Zahlung ausstehend" in page.text and "Gesamt" in page.text
    with database.job_session() as s:
        assert s.scalar(select(Order.locale)) == "de"


def test_prefixed_order_links_are_redacted_in_logs_too():
    from shop.privacy.logging import redact

    token = "A" * 43
    for path in (f"/de/orders/{token}", f"/nl/orders/{token}/bitcoin", f"/fr/downloads/{token}"):
        assert token not in redact(f'"GET {path} HTTP/1.1" 200')


def test_an_unknown_region_in_accept_language_is_ignored_not_an_error(client):
    response = client.get("/cart", headers={"Accept-Language": "nl-XX, nl-QQ;q=0.9"})
    assert response.status_code == 200 and _lang(response) == "nl"
    response = client.get("/de/cart", headers={"Accept-Language": "de-ZZ"})
    assert response.status_code == 200 and _lang(response) == "de"


def test_switch_on_a_page_shown_after_a_refused_post_links_to_pages_that_exist(client):
    product = _soup(client.get("/de/products/small-hours"))
    form = product.select_one("form[action$='/cart/add/small-hours']")
    data = {i["name"]: i.get("value", "") for i in form.select("input[name]")}
    data["quantity"] = "0"  # refused: the product page again, at the form's address
    refused = client.post(form["action"], data=data)
    assert refused.status_code == 400 and _lang(refused) == "de"
    for link in _soup(refused).select("nav.language-links a, .language-links a"):
        assert client.get(link["href"]).status_code == 200, link["href"]


# ---------------------------------------------------------------- issue 16's customer findings


def test_the_order_page_explains_itself_in_the_customers_language(client):
    """Next steps, details and privacy panel in German; times in the store's zone (Europe/Berlin
    by default), written the German way with the zone's name."""
    import re

    b = Browser(client)
    b.get("/de/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.get("/de/checkout")
    page = b.submit(
        b.form("main form"),
        {"country": "AT", "email": "", "digital_consent": "y"},
        button="Zahlungspflichtig bestellen",
    )
    assert page.url.startswith("/de/orders/")
    assert "Wie es weitergeht" in page.text and "What happens next" not in page.text
    assert "Bitte zahlen Sie bis" in page.soup.select_one(".next-step").get_text(" ")
    details = page.soup.select_one("section.order-details").get_text(" ")
    assert "Österreich" in details and "keine angegeben" in details
    history = page.soup.select_one("ol.history").get_text(" ")
    assert re.search(r"\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2} (CET|CEST)", history), history
    assert "UTC" not in history
    privacy = page.soup.select_one("section.privacy").get_text(" ")
    assert "digitale Waren brauchen keine Postanschrift" in privacy


@pytest.mark.parametrize(
    "prefix, what, basis",
    [
        (
            "/nl",
            "Uw naam en postadres, alleen als u iets koopt dat wij verzenden",
            "nodig om uw bestelling uit te voeren",
        ),
        ("/fr", "Votre nom et votre adresse postale", "nécessaire à l’exécution de votre commande"),
    ],
)
def test_the_privacy_notice_entries_are_translated(client, prefix, what, basis):
    page = _soup(client.get(f"{prefix}/legal/privacy"))
    text = page.get_text(" ")
    assert what in text and basis in text
    assert "Your name and postal address" not in text and "Legal basis" not in text


def test_the_order_link_email_is_written_in_the_orders_language(db_url, tmp_path):
    from sqlalchemy import select

    from shop.demo import seed_demo
    from shop.mail.outbox import render
    from shop.orders.models import Order

    app = make_test_app(
        db_url,
        tmp_path / "instance-mail",
        smtp_url="smtp://127.0.0.1:2525",
        mail_from="shop@example.org",
        base_url="https://shop.example",
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    b = Browser(app.test_client())
    b.get("/fr/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.get("/fr/checkout")
    page = b.submit(
        b.form("main form"),
        {"country": "FR", "email": "ada@example.org", "digital_consent": "y"},
        button="Commander avec obligation de paiement",
    )
    assert (
        page.soup.select_one("form.email-link input[type=submit]")["value"]
        == "M’envoyer le lien par e-mail"
    )
    with app.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        message = render(
            app.extensions["shop.settings"], order, "order_link", {}, "ada@example.org"
        )
    assert message["Subject"] == f"Votre lien vers la commande {order.number}"
    body = message.get_body(("plain",)).get_content()
    assert (
        "Conservez cet e-mail" in body and f"https://shop.example/fr/orders/{order.token}" in body
    )
    app.extensions["shop.db"].dispose()
