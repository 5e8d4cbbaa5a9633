"""A Danish-speaking browser (a language the shop does not ship) buys in German and in Dutch
with JavaScript off, choosing the language in the footer; every page says and is in that language,
and axe finds nothing serious on any of them."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_storefront_browser import _axe_problems

WORDS = {
    "de": {
        "switch": "Deutsch",
        "cart": "Ihr Warenkorb",
        "add": "In den Warenkorb",
        "checkout": "Zur Kasse",
        "name": "Vollständiger Name",
        "street": "Straße und Hausnummer",
        "postal": "Postleitzahl",
        "city": "Ort",
        "place": "Zahlungspflichtig bestellen",
        "pending": "Zahlung ausstehend",
        "pay": "Jetzt bezahlen",
        "paid": "Status: Bezahlt",
        "total": "43,90\xa0€",
    },
    "nl": {
        "switch": "Nederlands",
        "cart": "Uw winkelwagen",
        "add": "In winkelwagen",
        "checkout": "Afrekenen",
        "name": "Volledige naam",
        "street": "Straat en huisnummer",
        "postal": "Postcode",
        "city": "Plaats",
        "place": "Bestelling plaatsen en betalen",
        "pending": "Wacht op betaling",
        "pay": "Nu betalen",
        "paid": "Status: Betaald",
        "total": "€\xa043,90",
    },
}


@pytest.mark.parametrize("lang", ["de", "nl"])
def test_buying_in_the_language_chosen_in_the_footer(browser, live_server, lang):
    words = WORDS[lang]
    context = browser.new_context(java_script_enabled=False, locale="da-DK")
    page = context.new_page()
    visited = {}

    def check(name: str) -> None:
        assert page.get_attribute("html", "lang") == lang, (name, page.url)
        visited[name] = page.url

    page.goto(live_server.url + "/products/harbour-at-dawn")
    assert page.get_attribute("html", "lang") == "en"  # Danish is not shipped: English
    page.get_by_role("navigation", name="Language").get_by_role(
        "link", name=words["switch"]
    ).click()
    assert page.url == f"{live_server.url}/{lang}/products/harbour-at-dawn"
    check("product")
    page.get_by_label(re.compile("A3")).check()
    page.get_by_role("button", name=words["add"]).click()
    assert page.url.endswith(f"/{lang}/cart")
    assert words["cart"] in page.inner_text("h1")
    check("cart")
    page.get_by_role("link", name=words["checkout"]).click()
    check("checkout")
    page.get_by_label(words["name"]).fill("Grace Hopper")
    page.get_by_label(words["street"]).fill("2 Dock Street")
    page.get_by_label(words["postal"]).fill("20095")
    page.get_by_label(words["city"]).fill("Hamburg")
    page.get_by_role("button", name=words["place"]).click()
    assert re.search(rf"/{lang}/orders/[A-Za-z0-9_-]{{43}}$", page.url)
    main = page.inner_text("main")
    assert words["pending"] in main and words["total"] in main
    check("order")
    page.get_by_role("button", name=re.compile(words["pay"])).click()
    assert words["paid"] in page.inner_text("main")
    check("order paid")
    for slug in ("imprint", "privacy"):
        page.goto(f"{live_server.url}/{lang}/legal/{slug}")
        check(slug)
    # axe runs as JavaScript: the same pages, with the same cookie, in a context that allows it.
    checker = browser.new_context(storage_state=context.storage_state())
    context.close()
    page = checker.new_page()
    problems = {}
    for name, url in visited.items():
        page.goto(url)
        problems[name] = _axe_problems(page)
    checker.close()
    assert {name: p for name, p in problems.items() if p} == {}
