"""Where the master key comes from, and how sessions find it.

Production takes ``SHOP_DATA_KEY`` (and ``SHOP_DATA_KEY_OLD`` during a rotation) from the
environment and refuses to start without it (shop/config.py). Elsewhere a key is generated once
into the instance folder, like the secret key, so the demo needs no setup.

The app factory puts the keyring and the settings into every session's ``info`` so services
(which import no Flask) and worker jobs reach them through the session they already hold.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from shop.privacy.crypto import DataKeyError, Keyring, generate_master_key_text, load_master_key

if TYPE_CHECKING:
    from shop.config import Settings
    from shop.db import Database
    from shop.privacy.epochs import EpochRing

KEY_FILE = "data_key"
_KEYRING = "shop.keyring"
_SETTINGS = "shop.settings"


def create_file_once(path: Path, text: str) -> str:
    """Make `path` (mode 0600) holding `text` unless it exists; return what it holds.

    Written to a temporary file and linked into place: a process starting at the same moment
    (a second gunicorn worker on a fresh instance folder) sees no file or the whole file, never
    an empty one, and both end up with the same contents."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: use theirs
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def instance_data_key(instance: Path) -> str:
    """The instance folder's generated master key, created (mode 0600) on first use."""
    instance.mkdir(parents=True, exist_ok=True)
    return create_file_once(instance / KEY_FILE, generate_master_key_text())


def keyring_from_settings(settings: Settings) -> Keyring:
    current = load_master_key(settings.data_key, name="SHOP_DATA_KEY")
    old = [
        load_master_key(part, name=f"SHOP_DATA_KEY_OLD[{i}]")
        for i, part in enumerate(settings.data_key_old.split(","))
        if part.strip()
    ]
    return Keyring(current, old)


def keyring_folder(settings: Settings) -> Path:
    return (
        Path(settings.keyring_path) if settings.keyring_path else settings.instance_path / "keyring"
    )


def bind(database: Database, settings: Settings, keyring: Keyring, ring: EpochRing) -> None:
    """Give every session of ``database`` the keyrings and settings (called by create_app)."""
    database.sessionmaker.configure(
        info={
            **database.sessionmaker.kw.get("info", {}),
            _KEYRING: keyring,
            _SETTINGS: settings,
            "shop.epochs": ring,
        }
    )


def session_keyring(session: Session) -> Keyring:
    keyring = session.info.get(_KEYRING)
    if keyring is None:
        raise DataKeyError("this database session has no keyring; build it with create_app()")
    return keyring


def session_settings(session: Session) -> Settings:
    settings = session.info.get(_SETTINGS)
    if settings is None:
        raise LookupError("this database session has no settings; build it with create_app()")
    return settings
