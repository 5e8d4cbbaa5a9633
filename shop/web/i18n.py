"""Languages: Flask-Babel's gettext in templates and views.

The locale chosen for a request is the store's SHOP_LOCALE until the storefront offers a
language switch (issue 16 builds the choice: path prefix, Accept-Language, store default).
"""

from __future__ import annotations

from flask import Flask
from flask_babel import Babel

from shop import PACKAGE_DIR
from shop.config import Settings

TRANSLATIONS_DIR = PACKAGE_DIR / "translations"


def setup(app: Flask, settings: Settings) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = settings.locale
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    Babel(app, locale_selector=lambda: settings.locale)
