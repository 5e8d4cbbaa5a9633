"""Encrypted contact details: the only code that reads or writes order_contacts.

Each order gets its own random data key, stored only wrapped by an epoch key that lives outside
the database (shop/privacy/epochs.py); destroying the epoch key shreds every copy. Every field is
bound to its order and column (AES-GCM associated data), so a blob moved elsewhere fails to
open instead of showing one customer's data on another's order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from typing import Literal, overload

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shop.db import utcnow
from shop.models import metadata
from shop.orders.models import Order, OrderContact
from shop.privacy import epochs
from shop.privacy.crypto import (
    Keyring,
    decrypt_field,
    encrypt_field,
    new_data_key,
)
from shop.privacy.keys import session_keyring, session_settings


@dataclass(frozen=True)
class ContactDetails:
    email: str | None = None
    name: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None

    def is_empty(self) -> bool:
        return not any(asdict(self).values())


FIELDS = tuple(f.name for f in fields(ContactDetails))


class ContactErased(Exception):
    """The order's personal data was erased; it cannot be written again."""


def _key_context(order_id: int) -> bytes:
    return f"order:{order_id}".encode()


def _field_context(order_id: int, name: str) -> bytes:
    return f"order:{order_id}:{name}".encode()


def first_bucket(session: Session, now: datetime) -> date:
    """Where a new order's key starts: the day an unpaid order's data would fall due. The purge
    moves the key on, to the bucket of the order's real erase-by date, while it is needed."""
    settings = session_settings(session)
    return epochs.bucket_of(
        now
        + timedelta(hours=settings.retention_unpaid_hours, minutes=settings.order_expiry_minutes)
    )


@overload
def _data_key(
    session: Session, order: Order, *, create: Literal[True]
) -> tuple[bytes, OrderContact]: ...
@overload
def _data_key(
    session: Session, order: Order, *, create: bool
) -> tuple[bytes | None, OrderContact | None]: ...
def _data_key(
    session: Session, order: Order, *, create: bool
) -> tuple[bytes | None, OrderContact | None]:
    """The order's data key, unwrapped, and its contact row; both made on first use if ``create``.

    The key lives in the order's ``order_contacts`` row, so erasing that row destroys it, and
    with it everything any feature sealed for this order. A new row is added, not flushed.
    """
    if order.personal_data_erased_at is not None:
        if create:
            raise ContactErased(f"personal data of order {order.number} was erased")
        return None, None
    new_order = order.id is None
    if new_order:
        session.add(order)
        session.flush()
    # An order inserted just now cannot have a contact row yet: no need to look.
    contact = None if new_order else session.get(OrderContact, order.id)
    if contact is not None and contact.wrapped_key:
        return epochs.unwrap(session, contact.wrapped_key, _key_context(order.id)), contact
    if not create:
        return None, contact
    data_key = new_data_key()
    now = utcnow()
    wrapped, epoch_id = epochs.wrap(
        session, data_key, _key_context(order.id), first_bucket(session, now), now
    )
    if contact is None:
        contact = OrderContact(order_id=order.id, wrapped_key=wrapped, key_epoch=epoch_id)
        session.add(contact)
        session.expire(order, ["contact"])
    else:
        contact.wrapped_key, contact.key_epoch = wrapped, epoch_id
    return data_key, contact


def set_contact(session: Session, order: Order, details: ContactDetails) -> None:
    """Store ``details`` encrypted under the order's data key (replacing earlier details).

    Flushes first when the order has no id yet: the id is part of every blob's context.
    """
    data_key, contact = _data_key(session, order, create=True)
    for name in FIELDS:
        setattr(
            contact,
            name,
            encrypt_field(data_key, getattr(details, name), context=_field_context(order.id, name)),
        )
    session.flush()


def read_contact(session: Session, order: Order) -> ContactDetails | None:
    """The decrypted details, or None when the order has none (never given, or erased)."""
    contact = session.get(OrderContact, order.id)
    if (
        contact is None
        or not contact.wrapped_key
        or all(getattr(contact, name) is None for name in FIELDS)
    ):
        return None
    data_key = epochs.unwrap(session, contact.wrapped_key, _key_context(order.id))
    return ContactDetails(
        **{
            name: decrypt_field(
                data_key, getattr(contact, name), context=_field_context(order.id, name)
            )
            for name in FIELDS
        }
    )


def holds_other_personal_data(session: Session, order: Order) -> bool:
    """Whether a table other than the contact holds personal data of the order (a refund
    address, a tracking reference): every table with a column marked personal and an order_id,
    so a feature added later is counted without being named here."""
    for table in metadata.sorted_tables:
        marked = [c for c in table.columns if c.info.get("personal")]
        if (
            not marked
            or "order_id" not in table.columns
            or table.name == OrderContact.__tablename__
        ):
            continue
        found = session.execute(
            select(table.c.order_id)
            .where(table.c.order_id == order.id, or_(*(c.isnot(None) for c in marked)))
            .limit(1)
        )
        if found.first() is not None:
            return True
    return False


def held_fields(session: Session, order: Order) -> frozenset[str]:
    """Which contact fields the order holds (without decrypting them)."""
    contact = session.get(OrderContact, order.id)
    if contact is None:
        return frozenset()
    return frozenset(name for name in FIELDS if getattr(contact, name) is not None)


def has_contact(session: Session, order: Order) -> bool:
    contact = session.get(OrderContact, order.id)
    return contact is not None and any(getattr(contact, name) is not None for name in FIELDS)


def _sealed_context(order_id: int, purpose: str) -> bytes:
    if not purpose or ":" in purpose:
        raise ValueError("purpose must be a non-empty name without ':', e.g. 'refund-address'")
    return f"order:{order_id}:sealed:{purpose}".encode()


def seal(session: Session, order: Order, purpose: str, plaintext: str | None) -> bytes | None:
    """Encrypt a personal value another feature keeps for ``order`` (e.g. a refund address).

    Store the blob in a LargeBinary column marked ``info=personal()``. It opens only with the
    order's data key, so a dump without the master key shows nothing, and the purge's
    destruction of the data key makes it unreadable even if that feature's eraser missed it.
    """
    if plaintext is None:
        return None
    data_key, _ = _data_key(session, order, create=True)
    return encrypt_field(data_key, plaintext, context=_sealed_context(order.id, purpose))


def unseal(session: Session, order: Order, purpose: str, blob: bytes | None) -> str | None:
    """The value ``seal`` encrypted, or None once the order's personal data was erased."""
    if blob is None:
        return None
    data_key, _ = _data_key(session, order, create=False)
    if data_key is None:
        return None
    return decrypt_field(data_key, blob, context=_sealed_context(order.id, purpose))


def erase_contact(session: Session, order: Order) -> bool:
    """Destroy the wrapped data key and the fields (the row goes). True if there was one."""
    return erase_contacts(session, [order.id]) > 0


def erase_contacts(session: Session, order_ids: list[int], now: datetime | None = None) -> int:
    """Bulk form used by the purge; returns how many contact rows were erased.

    Old copies of the rows (WAL, old row versions, backups) still hold the wrapped keys: the
    epochs that wrapped them are marked to be destroyed at the next purge.
    """
    if not order_ids:
        return 0
    contacts = session.scalars(
        select(OrderContact).where(OrderContact.order_id.in_(order_ids))
    ).all()
    epochs.request_shred(session, {c.key_epoch for c in contacts if c.key_epoch}, now or utcnow())
    epochs.erased_in(session)
    for contact in contacts:
        # Null first so no later row version (PostgreSQL MVCC) carries the blobs, then delete.
        contact.wrapped_key = contact.key_epoch = None
        for name in FIELDS:
            setattr(contact, name, None)
    session.flush()
    for contact in contacts:
        session.delete(contact)
    session.flush()
    for order_id in order_ids:
        order = session.identity_map.get(session.identity_key(Order, order_id))
        if order is not None:
            session.expire(order, ["contact"])
    return len(contacts)


@dataclass(frozen=True)
class RotationResult:
    epoch_files_rewrapped: int
    epoch_files_current: int
    moved_to_epochs: int


def move_into_epochs(
    session: Session,
    order_ids: list[int] | None = None,
    bucket: date | None = None,
    exclude: frozenset[str] = frozenset(),
    batch: int = 500,
) -> int:
    """Re-wrap data keys under a (new) epoch: keys still wrapped by a master key (data from
    before epochs), or, with ``order_ids``, those orders' keys (the purge moving them out of an
    epoch it destroys). The data keys, and so every field, stay the same."""
    now = utcnow()
    bucket = bucket or first_bucket(session, now)
    moved = 0
    last_id = 0
    while True:
        stmt = (
            select(OrderContact)
            .where(OrderContact.order_id > last_id, OrderContact.wrapped_key.is_not(None))
            .order_by(OrderContact.order_id)
            .limit(batch)
        )
        if order_ids is None:
            stmt = stmt.where(OrderContact.key_epoch.is_(None))
        else:
            stmt = stmt.where(OrderContact.order_id.in_(order_ids))
        rows = session.scalars(stmt).all()
        if not rows:
            break
        for contact in rows:
            last_id = contact.order_id
            context = _key_context(contact.order_id)
            assert contact.wrapped_key is not None  # the query's condition
            data_key = epochs.unwrap(session, contact.wrapped_key, context)
            contact.wrapped_key, contact.key_epoch = epochs.wrap(
                session, data_key, context, bucket, now, exclude
            )
            moved += 1
        session.flush()
    return moved


def rotate_keys(
    session: Session, keyring: Keyring | None = None, batch: int = 500
) -> RotationResult:
    """After a new master key: re-wrap the epoch key files under it, and move any data key still
    wrapped by a master key into an epoch. Fields stay untouched."""
    keyring = keyring or session_keyring(session)
    ring = epochs.session_ring(session)
    if ring.masters is not keyring:
        ring = epochs.EpochRing(ring.directory, keyring)
    rewrapped, current = ring.rewrap_files()
    moved = move_into_epochs(session, batch=batch)
    return RotationResult(
        epoch_files_rewrapped=rewrapped, epoch_files_current=current, moved_to_epochs=moved
    )
