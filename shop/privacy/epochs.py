"""Epoch keys: what makes an erasure hold against old copies of the database.

Nulling a row does not destroy what was already written: PostgreSQL's old row versions, the
WAL, SQLite's ``-wal`` file and every backup keep an erased order's wrapped data key. So data
keys are wrapped by *epoch keys* that never enter the database. Each epoch key is a small file
in the key ring folder (``<instance>/keyring`` or ``SHOP_KEYRING_PATH``), itself wrapped by the
master key so a copy of the folder alone opens nothing. One epoch serves the orders whose
personal data falls due on one day (its *bucket*); the purge destroys an epoch's file

* when its bucket day has come (its orders are erased by then),
* at the first purge after an erasure of one of its orders (``shred_after``: the customer's
  "Erase my personal data now" is shredded within a day, not at the bucket), or
* once nothing is wrapped by it any more,

after re-wrapping the orders that still need their data under another epoch. From then on no
copy of the database, WAL or backup can give back those orders' data keys, whatever key the
shop still holds. See docs/PRIVACY.md (threat model, residual window, backups).

A file is overwritten before it is unlinked and the folder is fsynced; on copy-on-write or
flash storage the overwrite is best effort (the documented advice: keep the key ring on a
filesystem that is itself encrypted, or on tmpfs with a backup policy to match).
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shop.db import checkpoint_sqlite
from shop.privacy.crypto import (
    EPOCH_ID_BYTES,
    DataKeyError,
    DecryptionError,
    Keyring,
    new_data_key,
    rewrap,
    unwrap_data_key,
    unwrap_with_epoch,
    wrap_data_key,
    wrap_with_epoch,
    wrapped_epoch_id,
    wrapped_key_id,
    wrapped_version,
)
from shop.privacy.keys import session_keyring
from shop.privacy.models import KeyEpoch

_SUFFIX = ".key"
_INFO = "shop.epochs"
_DESTROY = "shop.epochs.destroy"


def _epoch_context(epoch_id: str) -> bytes:
    return f"epoch:{epoch_id}".encode()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EpochRing:
    """The key ring folder: create, read, re-wrap and destroy epoch key files."""

    def __init__(self, directory: Path, masters: Keyring) -> None:
        self.directory = Path(directory)
        self.masters = masters
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _path(self, epoch_id: str) -> Path:
        if len(epoch_id) != EPOCH_ID_BYTES * 2 or not all(
            c in "0123456789abcdef" for c in epoch_id
        ):
            raise DataKeyError("an epoch id is 16 lowercase hex characters")
        return self.directory / f"{epoch_id}{_SUFFIX}"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def create(self) -> tuple[str, bytes]:
        """A new epoch key, durably on disk before any data key is wrapped by it."""
        self._ensure_dir()
        epoch_id = secrets.token_hex(EPOCH_ID_BYTES)
        key = new_data_key()
        blob = wrap_data_key(self.masters.current, key, context=_epoch_context(epoch_id))
        fd = os.open(self._path(epoch_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.directory)
        with self._lock:
            self._cache[epoch_id] = key
        return epoch_id, key

    def key(self, epoch_id: str) -> bytes:
        path = self._path(epoch_id)
        if not path.exists():
            # Destroyed (perhaps by another process): forget any copy this one still holds.
            with self._lock:
                self._cache.pop(epoch_id, None)
            raise DataKeyError(
                f"epoch key {epoch_id} does not exist (destroyed, or the key ring "
                "folder is not the one the shop used)"
            )
        with self._lock:
            cached = self._cache.get(epoch_id)
        if cached is not None:
            return cached
        key = unwrap_data_key(self.masters, path.read_bytes(), context=_epoch_context(epoch_id))
        with self._lock:
            self._cache[epoch_id] = key
        return key

    def destroy(self, epoch_id: str) -> bool:
        """Overwrite, fsync and unlink the epoch's file; forget the key. True if it existed."""
        path = self._path(epoch_id)
        with self._lock:
            self._cache.pop(epoch_id, None)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        with path.open("r+b") as fh:
            fh.write(os.urandom(size))
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return True

    def file_ids(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {p.name[: -len(_SUFFIX)] for p in self.directory.glob(f"*{_SUFFIX}")}

    def held_keys(self) -> dict[str, bytes]:
        """Every epoch key this process can still get: in memory or in the folder."""
        held: dict[str, bytes] = {}
        for epoch_id in self.file_ids():
            try:
                held[epoch_id] = self.key(epoch_id)
            except (DataKeyError, DecryptionError):
                continue
        with self._lock:
            for epoch_id in list(self._cache):
                if epoch_id not in held and not self._path(epoch_id).exists():
                    del self._cache[epoch_id]
        return held

    def rewrap_files(self) -> tuple[int, int]:
        """Re-wrap every epoch file under the current master key: (re-wrapped, already current)."""
        rewrapped = current = 0
        for epoch_id in sorted(self.file_ids()):
            path = self._path(epoch_id)
            blob = path.read_bytes()
            if wrapped_key_id(blob) == self.masters.current.key_id:
                current += 1
                continue
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, rewrap(self.masters, blob, _epoch_context(epoch_id)))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            rewrapped += 1
        if rewrapped:
            _fsync_dir(self.directory)
        return rewrapped, current


def session_ring(session: Session) -> EpochRing:
    ring = session.info.get(_INFO)
    if ring is None:
        raise DataKeyError(
            "this database session has no epoch key ring; build it with create_app()"
        )
    return ring


def bucket_of(due: datetime) -> date:
    """The bucket of an order whose data is due at ``due``: destroyed from the next day on."""
    return due.date() + timedelta(days=1)


def _live_epoch(session: Session, bucket: date, exclude: frozenset[str]) -> KeyEpoch | None:
    stmt = (
        select(KeyEpoch)
        .where(
            KeyEpoch.bucket == bucket,
            KeyEpoch.destroyed_at.is_(None),
            KeyEpoch.shred_after.is_(None),
        )
        .order_by(KeyEpoch.created_at.desc())
    )
    if exclude:
        stmt = stmt.where(KeyEpoch.id.not_in(exclude))
    if session.get_bind().dialect.name == "postgresql":
        # A purge destroying this epoch locks it FOR UPDATE: it waits for this transaction and
        # then sees the data key wrapped here, instead of destroying the key under it.
        stmt = stmt.with_for_update(read=True)
    return session.scalars(stmt.limit(1)).first()


def epoch_for(
    session: Session, bucket: date, now: datetime, exclude: frozenset[str] = frozenset()
) -> tuple[str, bytes]:
    """The epoch key new data keys of ``bucket`` are wrapped by (made on first use)."""
    ring = session_ring(session)
    epoch = _live_epoch(session, bucket, exclude)
    if epoch is not None:
        try:
            return epoch.id, ring.key(epoch.id)
        except DataKeyError:
            pass  # its file is gone: never wrap under it again, start another
    epoch_id, key = ring.create()
    session.add(KeyEpoch(id=epoch_id, bucket=bucket, created_at=now))
    session.flush()
    return epoch_id, key


def wrap(
    session: Session,
    data_key: bytes,
    context: bytes,
    bucket: date,
    now: datetime,
    exclude: frozenset[str] = frozenset(),
) -> tuple[bytes, str]:
    epoch_id, key = epoch_for(session, bucket, now, exclude)
    return wrap_with_epoch(epoch_id, key, data_key, context=context), epoch_id


def unwrap(session: Session, wrapped: bytes, context: bytes) -> bytes:
    """A data key from its wrapped form: by its epoch key, or (older data) by a master key."""
    if wrapped_version(wrapped) == 1:
        return unwrap_data_key(session_keyring(session), wrapped, context=context)
    epoch_id = wrapped_epoch_id(wrapped)
    return unwrap_with_epoch(session_ring(session).key(epoch_id), wrapped, context=context)


def request_shred(session: Session, epoch_ids: set[str], now: datetime) -> None:
    """An order of these epochs was erased: destroy them at the next purge."""
    for epoch in session.scalars(
        select(KeyEpoch).where(KeyEpoch.id.in_(epoch_ids), KeyEpoch.shred_after.is_(None))
    ):
        epoch.shred_after = now


def destroy_after_commit(session: Session, epoch_ids: set[str]) -> None:
    """The files go once the transaction that re-wrapped their members has committed."""
    session.info.setdefault(_DESTROY, set()).update(epoch_ids)


_ERASED = "shop.epochs.erased"


def erased_in(session: Session) -> None:
    """Personal data was erased in this transaction: tidy the storage after the commit."""
    session.info[_ERASED] = True


@event.listens_for(Session, "after_commit")
def _destroy_committed(session: Session) -> None:
    pending = session.info.pop(_DESTROY, None)
    erased = session.info.pop(_ERASED, None)
    if pending:
        ring = session.info.get(_INFO)
        if ring is not None:
            for epoch_id in pending:
                ring.destroy(epoch_id)
    if (pending or erased) and isinstance(session.bind, Engine):
        try:
            checkpoint_sqlite(session.bind)
        except Exception:  # noqa: BLE001 - defence in depth; the erasure itself is committed
            pass


@event.listens_for(Session, "after_rollback")
def _keep_on_rollback(session: Session) -> None:
    session.info.pop(_DESTROY, None)
    session.info.pop(_ERASED, None)


@dataclass(frozen=True)
class ShredReport:
    destroyed: int
    rewrapped: int
    files_removed: int


def leftover_files(session: Session) -> set[str]:
    """Files of epochs already recorded as destroyed (a crash between commit and unlink)."""
    ring = session_ring(session)
    on_disk = ring.file_ids()
    if not on_disk:
        return set()
    return set(
        session.scalars(
            select(KeyEpoch.id).where(KeyEpoch.id.in_(on_disk), KeyEpoch.destroyed_at.is_not(None))
        )
    )
