"""Wire privacy into the app: keyring for every session, log redaction."""

from __future__ import annotations

import logging

from flask import Flask

from shop.config import Settings
from shop.privacy.epochs import EpochRing
from shop.privacy.keys import bind, keyring_folder, keyring_from_settings
from shop.privacy.logging import install_redaction, silence_payload_loggers


def setup(app: Flask, settings: Settings) -> None:
    keyring = keyring_from_settings(settings)
    app.extensions["shop.keyring"] = keyring
    ring = EpochRing(keyring_folder(settings), keyring)
    app.extensions["shop.epochs"] = ring
    bind(app.extensions["shop.db"], settings, keyring, ring)
    # Root handlers (gunicorn, `shop worker`) and the app's own logger. Handlers added later --
    # Flask's default handler on the first use of app.logger, a server's -- are covered by the
    # record factory install_redaction also sets up. app.logger is deliberately not touched
    # here: in `shop worker` Flask's handler would print every line a second time.
    install_redaction()
    install_redaction(logging.getLogger(app.import_name))
    silence_payload_loggers()
