"""A copy of personal data in any column -- an old one or one added tomorrow -- is caught here.

Markers go into every personal field through the real services (contact, tracking reference,
queued emails, order history); then every text and binary value of every table, reflected from
the database rather than taken from the models, is searched for them in plain text.
"""

from __future__ import annotations

import secrets

from sqlalchemy import LargeBinary, MetaData, select

from shop.models import metadata
from shop.orders import service
from shop.privacy.store import ContactDetails, read_contact
from tests.privacy.helpers import pay, place

# Binary columns that hold no personal value: key material, and the shop's own receive scripts.
NOT_PERSONAL = {"order_contacts.wrapped_key", "bitcoin_invoices.script_pubkey"}


def test_no_column_holds_a_plain_copy_of_personal_data(demo_catalog, database):
    tag = secrets.token_hex(4)
    details = ContactDetails(
        email=f"qzinv{tag}@example.org",
        name=f"Qzname{tag}",
        street=f"Qzstreet{tag} 1",
        postal_code=f"QZ{tag}",
        city=f"Qzcity{tag}",
    )
    tracking = f"QZTRACK{tag}"
    markers = [
        details.email,
        details.name,
        f"Qzstreet{tag}",
        details.postal_code,
        details.city,
        tracking,
    ]
    with database.job_session() as s:
        order = place(s, contact=details)
        pay(s, order)
        service.ship(s, order, tracking)
        assert read_contact(s, order) == details  # stored, so the search below means something

    meta = MetaData()
    meta.reflect(database.engine)
    found = []
    with database.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if isinstance(value, (str, bytes, memoryview)):
                        data = value.encode() if isinstance(value, str) else bytes(value)
                        found += [
                            f"{table.name}.{column.name}"
                            for m in markers
                            if m.lower().encode() in data.lower()
                        ]
    assert len(meta.tables) >= 10
    assert found == []


def test_every_binary_column_is_personal_or_key_material():
    """A new LargeBinary column (where sealed copies go) is either marked personal -- and so in
    docs/PRIVACY.md, under an eraser -- or listed above with the reason it is not."""
    unknown = {
        f"{t.name}.{c.name}"
        for t in metadata.sorted_tables
        for c in t.columns
        if isinstance(c.type, LargeBinary) and not c.info.get("personal")
    } - NOT_PERSONAL
    assert unknown == set()
