"""Legal pages: read and save, and the privacy notice (from the data inventory). No Flask."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from shop.db import utcnow
from shop.i18n import N_
from shop.legal.models import LegalPage
from shop.resources import resource_dir

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


def save_page(
    session: Session, slug: str, body: str, fields: dict[str, str] | None = None
) -> LegalPage:
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


@dataclass(frozen=True)
class NoticeItem:
    """One entry of the customer-facing privacy notice, in plain language, for the inventory's
    columns it explains. ``order_data``: kept and erased with the order's personal data (the
    notice's "How long" section); otherwise ``kept`` says how long."""

    columns: tuple[str, ...]
    what: str
    why: str
    basis: str
    order_data: bool = True
    kept: str = ""
    written: bool = True  # False: generated from docs/PRIVACY.md until someone writes it


CONTRACT = N_("needed to carry out your order (our contract with you)")

# What customers read at /legal/privacy. tests/test_customer_findings.py fails when a column of
# docs/PRIVACY.md's inventory is not explained here.
NOTICE = (
    NoticeItem(
        ("order_contacts.email",),
        N_("Your email address, if you give one"),
        N_("to send you the order confirmation, and emails about payment, shipping and refunds"),
        N_("needed to carry out your order (our contract with you); giving it is optional"),
    ),
    NoticeItem(
        (
            "order_contacts.name",
            "order_contacts.street",
            "order_contacts.postal_code",
            "order_contacts.city",
        ),
        N_("Your name and postal address, only when you buy something we ship"),
        N_("to send you the parcel"),
        CONTRACT,
    ),
    NoticeItem(
        ("shipments.tracking_sealed", "shipments.tracking"),
        N_("The parcel's tracking reference"),
        N_("so that you can follow your parcel"),
        CONTRACT,
    ),
    NoticeItem(
        ("refund_addresses.address",),
        N_("A Bitcoin address for a refund, only if we ask you for one"),
        N_("to send you the refund"),
        CONTRACT,
    ),
    NoticeItem(
        ("signin_failures.key",),
        N_(
            "When someone fails to sign in to the shop's administration: the user name "
            "tried, or a scrambled form of the network address that changes every day "
            "(never the address itself)"
        ),
        N_("to protect the shop against password guessing"),
        N_("our legitimate interest in keeping the shop secure"),
        order_data=False,
        kept=N_("24 hours"),
    ),
)


def customer_notice(path: Path | None = None) -> list[NoticeItem]:
    """The notice's entries: the written ones, then any inventory column nobody wrote plain
    text for yet, with the inventory's own words (so a new column is never left out)."""
    written = {column for item in NOTICE for column in item.columns}
    missing = [
        NoticeItem((item.column,), item.what, item.purpose, item.legal_basis, written=False)
        for item in inventory(path)
        if item.column not in written
    ]
    return [*NOTICE, *missing]


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
        cells = (
            [
                previous[i] if previous and c.lower() in ("as above", "") else c
                for i, c in enumerate(cells)
            ]
            if previous
            else cells
        )
        previous = cells
        items.append(DataItem(match.group(1), *cells))
    return items
