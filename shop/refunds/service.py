"""Asking for and taking a Bitcoin refund address. No Flask.

The address is checked for the shop's network (a testnet address on a mainnet shop, or a typo,
is refused with a message), kept only until the purge erases the order's personal data, and
stored only sealed under the order's data key (shop.privacy.store.seal): never in plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from embit import base58
from embit.networks import NETWORKS
from embit.script import address_to_scriptpubkey
from sqlalchemy import update
from sqlalchemy.orm import Session

from shop.db import rowcount, utcnow
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.orders.models import Order, OrderEvent
from shop.orders.states import OrderStatus
from shop.privacy.crypto import CryptoError
from shop.privacy.store import seal, unseal
from shop.refunds.models import RefundAddress

REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.FULFILLED})
PURPOSE = "refund-address"
NETWORK_NAMES = {
    "main": "Bitcoin mainnet",
    "test": "testnet",
    "signet": "signet",
    "regtest": "regtest",
}


class RefundAddressError(ValueError):
    pass


def validate_address(text: str, network: str) -> str:
    address = "".join((text or "").split())
    if not address or len(address) > 100:
        raise RefundAddressError(_l("Please enter a Bitcoin address."))
    params = NETWORKS[network]
    try:
        address_to_scriptpubkey(address)  # checksum and witness program
        hrp = address.lower().split("1", 1)[0]
        if hrp in {n["bech32"] for n in NETWORKS.values()}:
            ok = hrp == params["bech32"]
        else:
            ok = base58.decode_check(address)[:1] in (params["p2pkh"], params["p2sh"])
    except Exception:  # embit raises several types for malformed input
        raise RefundAddressError(
            _l("This is not a valid Bitcoin address. Please check it.")
        ) from None
    if not ok:
        raise RefundAddressError(
            _l(
                "This address is not for %(network)s, which this shop uses.",
                network=NETWORK_NAMES.get(network, network),
            )
        )
    return address


@dataclass(frozen=True)
class RefundRequest:
    """What the pages show: ``address`` is decrypted, or None (not given, erased, or
    ``unreadable`` because the master key that protects it is not configured)."""

    requested_at: datetime
    given_at: datetime | None
    given: bool
    address: str | None
    unreadable: bool = False


def get(session: Session, order: Order) -> RefundRequest | None:
    if order.paid_at is None:
        return None  # request_address only ever asks on paid orders: nothing to look up
    row = session.get(RefundAddress, order.id)
    if row is None:
        return None
    try:
        address, unreadable = unseal(session, order, PURPOSE, row.address), False
    except CryptoError:
        address, unreadable = None, True
    return RefundRequest(
        requested_at=row.requested_at,
        given_at=row.given_at,
        given=row.address is not None,
        address=address,
        unreadable=unreadable,
    )


def request_address(session: Session, order: Order, now: datetime | None = None) -> RefundAddress:
    # Which methods refund to an address is theirs to say (Refundable.to_address): the admin
    # offers this only for those.
    if order.state not in REFUNDABLE:
        raise RefundAddressError(_l("Only paid orders are refunded to an address."))
    row = session.get(RefundAddress, order.id)
    if row is None:
        row = RefundAddress(order_id=order.id, requested_at=now or utcnow())
        session.add(row)
        session.add(
            OrderEvent(
                order=order,
                at=now or utcnow(),
                from_status=order.status,
                to_status=order.status,
                note=N_("Refund: please give a Bitcoin address on this page"),
            )
        )
    return row


def give_address(
    session: Session, order: Order, text: str, network: str, now: datetime | None = None
) -> RefundAddress:
    row = session.get(RefundAddress, order.id)
    if row is None or order.state not in REFUNDABLE:
        raise RefundAddressError(_l("No refund address was asked for on this order."))
    if order.personal_data_erased_at is not None:
        raise RefundAddressError(
            _l("This order's personal data was erased. Please contact the shop.")
        )
    if row.address is not None:
        raise RefundAddressError(
            _l("The refund address was already given. Please contact the shop to change it.")
        )
    row.address = seal(session, order, PURPOSE, validate_address(text, network))
    row.given_at = now or utcnow()
    session.add(
        OrderEvent(
            order=order,
            at=row.given_at,
            from_status=order.status,
            to_status=order.status,
            note=N_("Refund address received"),
        )
    )
    return row


def erase(session: Session, order_ids) -> int:
    """For the privacy purge: the address goes with the order's other personal data."""
    ids = list(order_ids)
    if not ids:
        return 0
    return rowcount(
        session.execute(
            update(RefundAddress)
            .where(RefundAddress.order_id.in_(ids), RefundAddress.address.is_not(None))
            .values(address=None)
            .execution_options(synchronize_session=False)
        )
    )
