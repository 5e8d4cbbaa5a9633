"""The storefront's per-language shortcuts (shop/web/i18n.py) change no byte of any page.

The templates' gettext bound once per language, and the fixed parts of the layout rendered once
per language and kept, against the same pages rendered the way Flask-Babel does it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from shop.web import i18n as web_i18n

_CSRF = re.compile(r"<input[^>]*csrf_token[^>]*>")
PREFIXES = ("", "/de", "/en", "/nl", "/fr")
PAGES = (
    "/",
    "/?q=print",
    "/products/small-hours",
    "/cart",
    "/legal/imprint",
    "/no-such-page",
)


def _pages(client) -> dict[tuple[str, str, str], tuple[int, str]]:
    seen = {}
    for prefix in PREFIXES:
        for page in PAGES:
            for accept in ("", "nl-BE, de;q=0.5"):
                response = client.get(prefix + page, headers={"Accept-Language": accept})
                # The form token is signed with the time: the one part that may differ.
                text = _CSRF.sub("CSRF", response.get_data(as_text=True))
                seen[prefix, page, accept] = (response.status_code, text)
    return seen


def _add_to_cart(client) -> None:
    page = client.get("/de/products/small-hours").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    variant = re.search(r'name="variant" value="(\d+)"', page)
    assert token and variant
    response = client.post(
        "/de/cart/add/small-hours",
        data={"csrf_token": token.group(1), "variant": variant.group(1), "quantity": "2"},
    )
    assert response.status_code in (302, 303)
    client.get(response.headers["Location"])  # shows the one-time message "… was added"


def test_pages_are_the_same_with_and_without_the_language_shortcuts(client, demo_catalog):
    _add_to_cart(client)  # the cart's badge is in the header, beside a fixed part
    fast = _pages(client)
    again = _pages(client)
    for key, page in again.items():
        assert fast[key] == page, key  # and again, from what was kept
    statuses = {status for status, _text in fast.values()}
    assert statuses == {200, 404}
    assert 'class="badge"' in fast["/de", "/", ""][1]
    assert 'lang="de"' in fast["/de", "/", ""][1] and "Impressum" in fast["/de", "/", ""][1]

    # Flask-Babel's way: its gettext globals, every part of the layout rendered anew.
    rendered = []

    def fixed(name, *depends_on, caller):
        rendered.append(name)
        return caller()

    processors = demo_catalog.template_context_processors[None]
    processors[:] = [p for p in processors if p is not web_i18n._template_context]
    demo_catalog.jinja_env.globals["fixed"] = fixed
    slow = _pages(client)
    assert rendered  # the layout really was rendered without what was kept
    assert slow.keys() == fast.keys()
    for key, page in slow.items():
        assert fast[key] == page, key


def test_a_fixed_part_follows_the_store_name(client, demo_catalog):
    settings = demo_catalog.extensions["shop.settings"]
    before = client.get("/de/").get_data(as_text=True)
    assert f"<p>{settings.store_name} ·" in before
    demo_catalog.extensions["shop.settings"] = replace(settings, store_name="Another Shop")
    after = client.get("/de/").get_data(as_text=True)
    assert "<p>Another Shop ·" in after and "<span>Another Shop</span>" in after
