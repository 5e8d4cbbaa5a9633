"""shop: a self-hosted web shop with card and private Bitcoin checkout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Flask:
    """`shop:create_app()` for gunicorn and `from shop import create_app`: see shop.app."""
    # Imported when called: this file runs before every `shop.*` module, and importing the app
    # here would load every feature (and Flask) for `import shop.money`.
    from shop.app import create_app as build

    return build(config, environ)
