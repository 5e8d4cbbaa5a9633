"""The store's logo and favicon: uploaded in the admin, checked and re-encoded, served locally."""

from __future__ import annotations

import io

from PIL import Image

from tests.browser import Browser


def _png(size=(300, 120), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _post(b: Browser, **files):
    b.get("/admin/settings/branding")
    csrf = b.form("form.branding").find(attrs={"name": "csrf_token"})["value"]
    return b.client.post(
        "/admin/settings/branding",
        data={"csrf_token": csrf, **files},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def test_store_logo_and_favicon_uploaded_in_the_admin(admin, client, app):
    bad = _post(admin, logo=(io.BytesIO(b"not an image"), "logo.png"))
    assert bad.status_code == 400 and "not an image" in bad.get_data(as_text=True)
    ok = _post(
        admin,
        logo=(io.BytesIO(_png((1200, 400))), "logo.png"),
        favicon=(io.BytesIO(_png((300, 300), (0, 0, 200))), "icon.png"),
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)[:500]
    customer = app.test_client()
    home = Browser(customer).get("/")
    logo = home.soup.select_one(".site-header img.logo")
    assert logo is not None and logo["alt"] == ""  # the store's name beside it is the link text
    image = customer.get(logo["src"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.data)).size == (360, 120)  # scaled down, aspect kept
    icon = home.soup.select_one("link[rel=icon]")["href"]
    served = customer.get(icon)
    assert served.status_code == 200
    assert Image.open(io.BytesIO(served.data)).size == (64, 64)
    # Removing goes back to the default favicon and no logo.
    b = admin
    b.get("/admin/settings/branding")
    b.submit(b.form("form.branding-remove"))
    home = Browser(app.test_client()).get("/")
    assert home.soup.select_one(".site-header img.logo") is None
    assert app.test_client().get(home.soup.select_one("link[rel=icon]")["href"]).status_code == 200


def test_branding_needs_a_signed_in_merchant(client):
    response = client.post("/admin/settings/branding", data={})
    assert response.status_code in (302, 303, 400, 403)
    assert client.get("/admin/settings/branding").status_code in (302, 303)
