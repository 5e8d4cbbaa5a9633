"""Crypto-shredding that holds against old copies: once an order's personal data is erased and
the documented window has passed, no key the shop still holds opens a copy taken before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text

from shop.db import utcnow
from shop.orders import service
from shop.orders.models import OrderContact
from shop.privacy.purge import daily_purge, request_erasure
from shop.privacy.store import ContactDetails, read_contact
from tests.privacy.forensics import recover, shop_keys
from tests.privacy.helpers import pay, place


def _copy_of_contacts(database) -> bytes:
    """A backup of order_contacts as its raw column bytes (what any dump or file copy holds)."""
    with database.engine.connect() as conn:
        rows = conn.execute(select(OrderContact.__table__)).all()
    return b"\x00".join(bytes(v) for row in rows for v in row if isinstance(v, (bytes, memoryview)))


def test_a_copy_taken_before_erasure_opens_no_erased_order(demo_catalog, database):
    now = utcnow()
    with database.job_session() as s:
        erased_by_customer = place(s, now=now)
        kept = place(s, now=now, contact=ContactDetails(email="kept@example.org"))
        pay(s, kept, now=now)
        service.cancel(s, erased_by_customer, now=now)
        ids = (erased_by_customer.id, kept.id)
    backup = _copy_of_contacts(database)
    masters, epochs = shop_keys(demo_catalog)
    assert recover(backup, masters, epochs, range(1, 10)) == set(ids)  # the copy is real

    with database.job_session() as s:
        order = s.get(type(erased_by_customer), ids[0])
        assert request_erasure(s, order, now=now + timedelta(minutes=1)).erased
    if database.engine.dialect.name == "sqlite":  # the erasure's commit checkpointed the WAL
        wal = Path(f"{database.engine.url.database}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    # The documented bound: within 24 hours of the erasure the worker's purge has shredded it.
    daily_purge(database, now=now + timedelta(hours=24, minutes=2))

    masters, epochs = shop_keys(demo_catalog)
    # Nothing in the old copy opens: the open order's key was moved to a new epoch and the old
    # epoch destroyed (a backup's personal data lasts as long as the key ring's backup does).
    assert recover(backup, masters, epochs, range(1, 10)) == set()
    assert recover(_copy_of_contacts(database), masters, epochs, range(1, 10)) == {ids[1]}
    with database.job_session() as s:  # the open order is still readable
        assert read_contact(s, s.get(type(erased_by_customer), ids[1])).email == "kept@example.org"


TRACKING = "QZTRACK00998877DE"


def test_the_tracking_reference_is_stored_encrypted_everywhere(demo_catalog, database):
    with database.job_session() as s:
        order = place(s)
        pay(s, order)
        service.ship(s, order, TRACKING)
        order_id = order.id
    with database.engine.connect() as conn:
        values = [
            v
            for table in ("shipments", "order_events", "outbox_messages")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
            for v in row
        ]
    dumped = b"\x00".join(
        v.encode() if isinstance(v, str) else bytes(v)
        for v in values
        if isinstance(v, (str, bytes, memoryview))
    )
    assert TRACKING.encode() not in dumped
    # ... and still shown to whom it belongs: the admin's order page and the shipping email.
    from shop.orders.shipments import shipments

    with database.job_session() as s:
        assert [sh.tracking for sh in shipments(s, s.get(type(order), order_id))] == [TRACKING]
