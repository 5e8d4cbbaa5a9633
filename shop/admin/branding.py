"""The store's logo and favicon: uploaded in the admin, re-encoded from their pixels (like product
images) and kept in the media folder under fixed names. No Flask, no database: the files are the
setting, so every app server sharing the media folder shows the same ones."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from shop.admin.images import clean_copy, decode_image

FOLDER = "branding"
LOGO, FAVICON = "logo.png", "favicon.png"
LOGO_BOX = (480, 120)  # the header shows it at most 60 px high: twice that for sharp screens
FAVICON_SIDE = 64


@dataclass(frozen=True)
class Branding:
    """Media paths (with a version, so a new upload is not hidden by caches), or None."""

    logo: str | None
    favicon: str | None


def _folder(uploads: Path) -> Path:
    return uploads / FOLDER


def _version(path: Path) -> str | None:
    try:
        return f"{FOLDER}/{path.name}?v={os.stat(path).st_mtime_ns}"
    except OSError:
        return None


def current(uploads: Path) -> Branding:
    folder = _folder(uploads)
    return Branding(_version(folder / LOGO), _version(folder / FAVICON))


def _write(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    image.save(partial, "PNG", optimize=True)
    partial.replace(path)  # never serve a half-written file


def save_logo(uploads: Path, data: bytes) -> None:
    clean, _ = clean_copy(decode_image(data))
    clean.thumbnail(LOGO_BOX)
    _write(clean, _folder(uploads) / LOGO)


def save_favicon(uploads: Path, data: bytes) -> None:
    clean, _ = clean_copy(decode_image(data))
    # Square, whole image visible: pad the short side with transparency.
    square = ImageOps.pad(clean.convert("RGBA"), (FAVICON_SIDE, FAVICON_SIDE), color=(0, 0, 0, 0))
    _write(square, _folder(uploads) / FAVICON)


def remove(uploads: Path) -> None:
    for name in (LOGO, FAVICON):
        (_folder(uploads) / name).unlink(missing_ok=True)
