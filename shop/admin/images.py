"""Uploaded product images, decoded and re-encoded with Pillow (no Flask).

Re-encoding from pixels is what strips EXIF/GPS and any other metadata or payload hidden in
the file, and decoding (not the file name) decides what the file is.
"""

from __future__ import annotations

import io
import secrets
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; beyond that decoding costs too much memory
MAX_SIDE = 2000
THUMB_SIDE = 480


class ImageRejected(ValueError):
    pass


def thumbnail_name(filename: str) -> str:
    stem, _, ext = filename.rpartition(".")
    return f"{stem}-thumb.{ext}"


def decode_image(data: bytes) -> Image.Image:
    """The uploaded file's pixels, upright; ImageRejected (with a message) for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = Image.open(io.BytesIO(data))
            if source.format not in ALLOWED_FORMATS:
                raise ImageRejected("Only JPEG, PNG, WebP and GIF images can be uploaded.")
            width, height = source.size
            if width * height > MAX_PIXELS:
                raise ImageRejected(
                    f"The image is too large ({width} × {height} pixels); "
                    f"at most {MAX_PIXELS // 1_000_000} megapixels."
                )
            source.load()
            image = ImageOps.exif_transpose(source)  # keep its orientation, drop the EXIF
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"The image is too large; at most {MAX_PIXELS // 1_000_000} megapixels."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(
            "This file is not an image we can read (JPEG, PNG, WebP or GIF)."
        ) from exc
    return image


def clean_copy(image: Image.Image) -> tuple[Image.Image, bool]:
    """RGB(A) pixels in a fresh image: no info dict is carried over, so no EXIF, XMP, ICC or
    comments. Returns it and whether it has transparency."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if has_alpha else "RGB")
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    return clean, has_alpha


def process_image(data: bytes, folder: Path) -> str:
    """Check, clean and store one image; returns the new file name inside `folder`."""
    clean, has_alpha = clean_copy(decode_image(data))
    fmt, ext = ("PNG", "png") if has_alpha else ("JPEG", "jpg")
    clean.thumbnail((MAX_SIDE, MAX_SIDE))
    folder.mkdir(parents=True, exist_ok=True)
    filename = f"p-{secrets.token_hex(12)}.{ext}"
    options = {"optimize": True} if fmt == "PNG" else {"quality": 85, "optimize": True}
    clean.save(folder / filename, fmt, **options)
    clean.thumbnail((THUMB_SIDE, THUMB_SIDE))
    clean.save(folder / thumbnail_name(filename), fmt, **options)
    return filename


def remove_image(folder: Path, filename: str) -> None:
    for name in (filename, thumbnail_name(filename)):
        path = folder / name
        if path.parent == folder and path.is_file():
            path.unlink()
