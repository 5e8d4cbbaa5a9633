"""Legal pages: read and save, and the privacy notice's data inventory. No Flask."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from shop import resource_dir
from shop.db import utcnow
from shop.i18n import N_
from shop.legal.models import LegalPage

# Message ids: the public pages show them in the customer's language, the admin as they are.
PAGES = {
    "imprint": N_("Imprint"),
    "terms": N_("Terms and conditions"),
    "withdrawal": N_("Returns and right of withdrawal"),
    "privacy": N_("Privacy notice"),
}
IMPRINT_FIELDS = {
    "legal_name": N_("Legal name of the business"),
    "representative": N_("Represented by"),
    "address": N_("Postal address"),
    "email": N_("Contact email"),
    "phone": N_("Phone (optional)"),
    "vat_id": N_("VAT identification number"),
    "registration": N_("Commercial register and number (if registered)"),
}
MAX_BODY = 100_000


class UnknownPage(LookupError):
    pass


def get_page(session: Session, slug: str) -> LegalPage | None:
    if slug not in PAGES:
        raise UnknownPage(slug)
    return session.get(LegalPage, slug)


def imprint_fields(page: LegalPage | None) -> dict[str, str]:
    try:
        data = json.loads(page.data) if page is not None else {}
    except ValueError:
        data = {}
    return {name: str(data.get(name, "")) for name in IMPRINT_FIELDS}


def save_page(session: Session, slug: str, body: str, fields: dict[str, str] | None = None) -> LegalPage:
    page = get_page(session, slug)
    if page is None:
        page = LegalPage(slug=slug)
        session.add(page)
    page.body = body.replace("\r\n", "\n").strip()[:MAX_BODY]
    if fields is not None:
        page.data = json.dumps({k: (fields.get(k) or "").strip()[:500] for k in IMPRINT_FIELDS})
    page.updated_at = utcnow()
    return page


def paragraphs(text: str) -> list[list[str]]:
    """Plain text to paragraphs of lines (rendered escaped: merchants write text, not HTML)."""
    return [block.splitlines() for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]


@dataclass(frozen=True)
class DataItem:
    column: str
    what: str
    purpose: str
    legal_basis: str
    retention: str
    erasure: str


def inventory(path: Path | None = None) -> list[DataItem]:
    """The personal-data inventory (docs/PRIVACY.md's table), for the privacy notice."""
    path = path or resource_dir("docs") / "PRIVACY.md"
    try:
        text = path.read_text()
    except OSError:
        return []
    items, previous = [], None
    for line in text.splitlines():
        match = re.match(r"\|\s*`([a-z_]+\.[a-z_]+)`\s*\|(.*)\|\s*$", line)
        if not match:
            continue
        cells = [re.sub(r"[*`]", "", c).strip() for c in match.group(2).split("|")]
        cells = (cells + [""] * 5)[:5]
        # "as above" repeats the row before, so the notice reads on its own.
        cells = [previous[i] if previous and c.lower() in ("as above", "") else c
                 for i, c in enumerate(cells)] if previous else cells
        previous = cells
        items.append(DataItem(match.group(1), *cells))
    return items
