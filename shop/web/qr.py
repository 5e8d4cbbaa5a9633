"""A QR code for a payment page (on-chain and Lightning requests share one look)."""

from __future__ import annotations

import io

import segno
from flask_babel import gettext as _
from markupsafe import Markup


def qr_svg(data: str) -> Markup:
    """The QR code as inline SVG: presentation attributes only, no style attribute (CSP)."""
    out = io.BytesIO()
    segno.make(data, error="m").save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        scale=5,
        border=4,
        dark="#000",
        light="#fff",
        svgclass="qr",
        lineclass=None,
        omitsize=False,
        title=_("QR code of the payment request"),
    )
    return Markup(out.getvalue().decode())
