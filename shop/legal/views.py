"""The public legal pages, linked from every page's footer and from the checkout."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import gettext as _

from shop.legal import service
from shop.web.context import db_session

bp = Blueprint("legal", __name__, url_prefix="/legal")


@bp.get("/<slug>")
def page(slug: str):
    if slug not in service.PAGES:
        abort(404)
    stored = service.get_page(db_session(), slug)
    return render_template(
        "legal/page.html",
        slug=slug,
        title=_(service.PAGES[slug]),
        page=stored,
        paragraphs=service.paragraphs(stored.body if stored else ""),
        imprint=service.imprint_fields(stored),
        imprint_labels={k: _(v) for k, v in service.IMPRINT_FIELDS.items()},
        notice=service.customer_notice() if slug == "privacy" else [],
    )
