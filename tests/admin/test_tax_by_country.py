"""The merchant's per-country rates and EU category of a tax class (VAT by destination)."""

from __future__ import annotations

from sqlalchemy import select

from shop.catalog.models import TaxClass
from shop.orders.models import OrderLine
from tests.browser import Browser


def test_merchant_sets_a_category_and_an_own_rate_for_a_country(admin, database, client):
    b = admin
    page = b.get("/admin/settings/tax")
    assert "valid from" in page.text  # the EU table's date of validity is shown
    with database.job_session() as session:
        reduced = session.scalar(select(TaxClass).where(TaxClass.code == "reduced"))
    form = b.form(f"form[action$='/settings/tax/{reduced.id}']")
    bad = b.submit(form, {f"tax{reduced.id}-country_rates": "NL=nine"})
    assert any("not a number" in m for m in bad.messages())
    form = b.form(f"form[action$='/settings/tax/{reduced.id}']")
    page = b.submit(
        form,
        {f"tax{reduced.id}-country_rates": "nl=6; fr=5.5", f"tax{reduced.id}-category": "reduced"},
    )
    assert any("Tax class saved" in m for m in page.messages())
    assert (
        b.page.soup.find(attrs={"name": f"tax{reduced.id}-country_rates"})["value"]
        == "FR=5.5, NL=6"
    )
    # An e-book is taxed where the customer is: the Netherlands, at the merchant's own rate.
    b2 = Browser(client)
    b2.get("/products/small-hours")
    b2.submit(b2.form("form[action$='/cart/add/small-hours']"))
    b2.get("/checkout")
    b2.submit(b2.form("main form"), {"country": "NL", "digital_consent": "y"}, button="Place order")
    with database.job_session() as session:
        line = session.scalar(select(OrderLine))
        assert (line.tax_country, line.tax_rate_bp) == ("NL", 600)
