"""Digital goods: storing the merchant's file, granting downloads when an order is paid, and
handing out a download (atomically counted). No Flask."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from shop.catalog.models import DIGITAL, Product, Variant
from shop.db import rowcount, utcnow
from shop.downloads.models import DigitalFile, DownloadGrant
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.orders import events
from shop.orders import service as orders
from shop.orders.models import Order, OrderLine
from shop.orders.states import OrderStatus

DEFAULT_DAYS = 7
DEFAULT_COUNT = 5
# The order must still be paid for: a refunded or cancelled order downloads nothing.
ENTITLED = frozenset(
    {OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.CLOSED, OrderStatus.PARTIALLY_REFUNDED}
)


class DownloadUnavailable(Exception):
    """The link is unknown, used up, expired, or its order no longer entitles to it."""


def folder(instance_path: Path) -> Path:
    # Not under uploads/: that folder is public (/media), these files are sold.
    return instance_path / "downloads"


def safe_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", Path(name or "").name)
    name = re.sub(r"[^\w.\- ()]+", "_", name).strip(" .")
    return name[:200] or "download"


def store_file(
    session: Session, product: Product, data: bytes, filename: str, instance_path: Path
) -> DigitalFile:
    if product.kind != DIGITAL:
        raise ValueError("Only digital products deliver a file.")
    if not data:
        raise ValueError("The file is empty.")
    target = folder(instance_path)
    target.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    (target / stored).write_bytes(data)
    _on_rollback_delete(session, target / stored)
    record = session.scalar(select(DigitalFile).where(DigitalFile.product_id == product.id))
    if record is None:
        record = DigitalFile(
            product_id=product.id, stored_name=stored, original_name="", size=0, sha256=""
        )
        session.add(record)
    else:
        # The old file goes once the new one is committed (it may carry a customer's
        # watermark one day); before that, a rollback must still find it.
        _on_commit_delete(session, target / record.stored_name)
    record.stored_name, record.original_name = stored, safe_name(filename)
    record.size, record.sha256, record.uploaded_at = (
        len(data),
        hashlib.sha256(data).hexdigest(),
        utcnow(),
    )
    session.flush()
    return record


_AFTER_COMMIT = "shop.downloads.delete_after_commit"
_AFTER_ROLLBACK = "shop.downloads.delete_after_rollback"


def _on_commit_delete(session: Session, path: Path) -> None:
    session.info.setdefault(_AFTER_COMMIT, []).append(path)


def _on_rollback_delete(session: Session, path: Path) -> None:
    session.info.setdefault(_AFTER_ROLLBACK, []).append(path)


@event.listens_for(Session, "after_commit")
def _delete_replaced(session: Session) -> None:
    session.info.pop(_AFTER_ROLLBACK, None)
    for path in session.info.pop(_AFTER_COMMIT, []):
        path.unlink(missing_ok=True)


@event.listens_for(Session, "after_rollback")
def _delete_unsaved(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
    for path in session.info.pop(_AFTER_ROLLBACK, []):
        path.unlink(missing_ok=True)


def paid_orders_of(session: Session, product_id: int) -> list[Order]:
    """Orders still entitled to downloads that bought a variant of ``product_id``."""
    return list(
        session.scalars(
            select(Order)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .join(Variant, Variant.id == OrderLine.variant_id)
            .where(Variant.product_id == product_id, Order.status.in_([s.value for s in ENTITLED]))
            .distinct()
            .order_by(Order.id)
        )
    )


def file_for(session: Session, product_id: int) -> DigitalFile | None:
    return session.scalar(select(DigitalFile).where(DigitalFile.product_id == product_id))


def _limits(session: Session) -> tuple[int, int]:
    settings = session.info.get("shop.settings")
    return (
        getattr(settings, "download_days", DEFAULT_DAYS) or DEFAULT_DAYS,
        getattr(settings, "download_count", DEFAULT_COUNT) or DEFAULT_COUNT,
    )


def grant_for_paid_order(session: Session, order: Order, now: datetime | None = None) -> bool:
    """Give the order its download links. True when every line is a digital product with a
    file, i.e. when the downloads alone fulfil the order."""
    now = now or utcnow()
    days, count = _limits(session)
    # Without the consent to immediate delivery the link starts after the withdrawal period,
    # and its days count from then.
    start = max(now, order.downloads_from) if order.downloads_from else now
    digital = [line for line in order.lines if line.kind == DIGITAL and line.variant_id is not None]
    if not digital:
        return False
    product_ids = set(
        session.scalars(
            select(Variant.product_id).where(Variant.id.in_([line.variant_id for line in digital]))
        )
    )
    files = list(
        session.scalars(select(DigitalFile).where(DigitalFile.product_id.in_(product_ids)))
    )
    have = set(
        session.scalars(
            select(DownloadGrant.digital_file_id).where(DownloadGrant.order_id == order.id)
        )
    )
    for f in files:
        if f.id not in have:
            session.add(
                DownloadGrant(
                    order_id=order.id,
                    digital_file_id=f.id,
                    token=secrets.token_urlsafe(32),
                    expires_at=start + timedelta(days=days),
                    downloads_left=count,
                    created_at=now,
                )
            )
    session.flush()
    return len(digital) == len(order.lines) and len(files) == len(product_ids)


def deliver_on_payment(session: Session, event: events.OrderPaid) -> None:
    """Subscriber (shop/subscribers.py): a paid order gets its download links, and an order
    the downloads alone complete is fulfilled."""
    order = event.order(session)
    if grant_for_paid_order(session, order, event.at) and not order.requires_shipping:
        orders.fulfil(
            session,
            order,
            N_("Downloads ready: fulfilled automatically"),
            event.at,
            stock_reason=N_("Delivered as a download"),
        )


def deliver_new_file(session: Session, product_id: int, now: datetime | None = None) -> int:
    """A file was added to a digital product: orders already paid for it get their download
    now, and an order the downloads alone complete is fulfilled. Returns how many orders."""
    now = now or utcnow()
    entitled = paid_orders_of(session, product_id)
    for order in entitled:
        if (
            grant_for_paid_order(session, order, now)
            and not order.requires_shipping
            and order.state == OrderStatus.PAID
        ):
            orders.fulfil(
                session,
                order,
                N_("Downloads ready: fulfilled"),
                now,
                stock_reason=N_("Delivered as a download"),
            )
    return len(entitled)


@dataclass(frozen=True)
class OfferedDownload:
    token: str
    name: str
    size: int
    expires_at: datetime
    downloads_left: int
    # Not before this (the withdrawal period of an order placed without the consent to
    # immediate delivery); None: at once.
    available_from: datetime | None = None

    @property
    def waiting(self) -> bool:
        return self.available_from is not None and self.available_from > utcnow()

    @property
    def usable(self) -> bool:
        return self.downloads_left > 0 and self.expires_at > utcnow() and not self.waiting


def offered(session: Session, order: Order) -> list[OfferedDownload]:
    if order.state not in ENTITLED:
        return []
    rows = session.execute(
        select(DownloadGrant, DigitalFile)
        .join(DigitalFile, DigitalFile.id == DownloadGrant.digital_file_id)
        .where(DownloadGrant.order_id == order.id)
        .order_by(DownloadGrant.id)
    )
    return [
        OfferedDownload(
            g.token, f.original_name, f.size, g.expires_at, g.downloads_left, order.downloads_from
        )
        for g, f in rows
    ]


def take_download(
    session: Session, token: str, instance_path: Path, now: datetime | None = None
) -> tuple[Path, str]:
    """Count one download and return (path, name); raise DownloadUnavailable otherwise."""
    now = now or utcnow()
    if not token or len(token) > 64:
        raise DownloadUnavailable(_l("This download link is not valid."))
    grant = session.scalar(select(DownloadGrant).where(DownloadGrant.token == token))
    if grant is None:
        raise DownloadUnavailable(_l("This download link is not valid."))
    order = session.get(Order, grant.order_id)
    if order is None or order.state not in ENTITLED:
        raise DownloadUnavailable(_l("This order no longer includes the download."))
    if order.downloads_from is not None and now < order.downloads_from:
        raise DownloadUnavailable(
            _l(
                "This download starts on %(when)s UTC, when the withdrawal period has ended (you did "
                "not agree to immediate delivery).",
                when=f"{order.downloads_from:%Y-%m-%d %H:%M}",
            )
        )
    if grant.expires_at <= now:
        raise DownloadUnavailable(_l("This download link has expired."))
    # One conditional UPDATE: two clicks at once cannot both take the last download.
    taken = rowcount(
        session.execute(
            update(DownloadGrant)
            .where(DownloadGrant.id == grant.id, DownloadGrant.downloads_left > 0)
            .values(downloads_left=DownloadGrant.downloads_left - 1)
            .execution_options(synchronize_session=False)
        )
    )
    if taken != 1:
        raise DownloadUnavailable(_l("This file has been downloaded as often as the link allows."))
    record = session.get_one(DigitalFile, grant.digital_file_id)
    path = folder(instance_path) / record.stored_name
    if not path.is_file():
        raise DownloadUnavailable(_l("The file is missing. Please contact the shop."))
    return path, record.original_name
