"""Shipping zones never overlap nor share a name (issue 14): the price for a country is
unambiguous, and the merchant is told why a zone was refused."""

from __future__ import annotations

from sqlalchemy import func, select

from shop.cart.models import ShippingZone


def _zones(database) -> int:
    with database.job_session() as s:
        return s.scalar(select(func.count()).select_from(ShippingZone))


def test_a_country_in_two_zones_is_refused(admin, database):
    admin.get("/admin/settings/shipping")
    page = admin.submit(
        admin.form("form[action$='/shipping/zones']"),
        {"newzone-name": "Benelux", "newzone-countries": "BE, NL, LU"},
    )
    text = " ".join(page.messages())
    assert (
        "Belgium (BE), Netherlands (NL), Luxembourg (LU) are already in the zone "
        "“European Union”" in text
    )
    assert _zones(database) == 3


def test_a_zone_name_used_twice_is_refused(admin, database):
    admin.get("/admin/settings/shipping")
    page = admin.submit(
        admin.form("form[action$='/shipping/zones']"),
        {"newzone-name": "germany", "newzone-countries": "LI"},
    )
    assert any("A zone named “Germany” already exists" in m for m in page.messages())
    assert _zones(database) == 3


def test_editing_a_zone_may_keep_its_own_countries(admin, database):
    with database.job_session() as s:
        zone = s.scalar(select(ShippingZone).where(ShippingZone.name == "Germany"))
    admin.get("/admin/settings/shipping")
    page = admin.submit(
        admin.form(f"form[action$='/zones/{zone.id}']"),
        {f"zone{zone.id}-name": "Germany", f"zone{zone.id}-countries": "DE, LI"},
    )
    assert "Shipping zone saved." in page.messages()
    page = admin.submit(
        admin.form(f"form[action$='/zones/{zone.id}']"),
        {f"zone{zone.id}-name": "Germany", f"zone{zone.id}-countries": "DE, CH"},
    )
    assert any(
        "Switzerland (CH) is already in the zone “Rest of world”" in m for m in page.messages()
    )
    with database.job_session() as s:
        assert s.get(ShippingZone, zone.id).countries == "DE,LI"
