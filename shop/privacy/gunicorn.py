"""gunicorn's logger for the shop: access lines without client address, query string or tokens.

``shop/gunicorn_conf.py`` selects it (``gunicorn -c python:shop.gunicorn_conf ...``). Redaction
does not depend on the app having been loaded in the process that writes the line: the
master's own lines and a worker's lines before the app exists pass through it too.
"""

from __future__ import annotations

from typing import cast

from gunicorn.glogging import Logger

from shop.privacy.logging import install_record_redaction, redact, strip_query_strings


class PrivateLogger(Logger):
    def setup(self, cfg) -> None:
        install_record_redaction()
        super().setup(cfg)

    # typeshed's stubs declare the fixed atoms only (a TypedDict); gunicorn's dict also has a
    # "{name}i", "{name}o" and "{name}e" key for every request header, response header and
    # environ variable, which must be redacted too.
    def atoms(self, resp, req, environ, request_time) -> dict[str, object]:  # type: ignore[override]
        atoms = cast("dict[str, object]", super().atoms(resp, req, environ, request_time))
        # Whatever format the operator chose, no atom may carry the raw path, query or address.
        for key, value in list(atoms.items()):
            if isinstance(value, str):
                atoms[key] = redact(strip_query_strings(value))
        for key in ("h", "q", "{x-forwarded-for}i", "{x-real-ip}i"):
            if key in atoms:
                atoms[key] = "-"
        return atoms
