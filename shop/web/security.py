"""Headers every response carries, and the error pages (a clear message and a 4xx, never a 500)."""

from __future__ import annotations

import logging

from flask import Flask, Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shop.web.forms import has_control_characters

log = logging.getLogger(__name__)

# No inline script or style, nothing from another host: the pages must work in Tor Browser
# at its safest setting and never leak a visit to a third party.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


def content_security_policy(form_action_origins: list[str] | tuple[str, ...] = ()) -> str:
    """The policy, with extra form targets: Chrome applies form-action to the redirect that
    follows a form POST, so a payment page the shop redirects to must be listed."""
    if not form_action_origins:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", " ".join(["form-action 'self'", *form_action_origins])
    )


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        content_security_policy(current_app.extensions.get("shop.form_action_origins", ())),
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault(
        "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
    )
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_app.extensions["shop.settings"].production:
        # Production is served over HTTPS only (docs/DEPLOY.md); browsers ignore this on http.
        response.headers.setdefault("Strict-Transport-Security", "max-age=63072000")
    if request.endpoint != "static" and "Cache-Control" not in response.headers:
        # Pages show carts and order links: no shared cache may keep them.
        response.headers["Cache-Control"] = "no-store"
    return response


ERROR_TEXT = {
    400: (
        _l("Bad request"),
        _l("The request could not be understood. Please go back and try again."),
    ),
    403: (_l("Forbidden"), _l("You are not allowed to do that.")),
    404: (_l("Not found"), _l("There is nothing here. The link may be mistyped or out of date.")),
    405: (_l("Method not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"), _l("What you sent is larger than this shop accepts.")),
    429: (_l("Too many requests"), _l("Please wait a moment and try again.")),
}


def refuse_control_characters() -> None:
    """At the edge: no path or query with control characters reaches a view (a NUL byte makes
    PostgreSQL refuse the query; CR/LF and ESC corrupt headers and log lines)."""
    if has_control_characters(request.path):
        abort(404)
    for key, value in request.args.items(multi=True):
        if has_control_characters(key) or has_control_characters(value):
            abort(400)


DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


def register_error_handlers(app: Flask) -> None:
    app.before_request(refuse_control_characters)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(exc: Exception):
        # Connection refused, server restarting, SQLite locked for too long: nothing the customer
        # did. One line, no traceback (the text of such errors can name hosts and paths).
        log.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.path,
            type(getattr(exc, "orig", exc)).__name__,
        )
        response = current_app.make_response(
            (
                render_template(
                    "errors/error.html",
                    code=503,
                    title=_("Shop temporarily unavailable"),
                    message=_(
                        "The shop is temporarily unavailable. Nothing was lost or charged; please "
                        "try again in a minute."
                    ),
                ),
                503,
            )
        )
        response.headers["Retry-After"] = "60"
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template(
            "errors/error.html",
            code=400,
            title=_("Form expired"),
            message=_(
                "This form has expired or was sent from elsewhere. "
                "Please reload the page and submit it again."
            ),
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if code >= 500:
            return unexpected_error(exc)
        title, message = ERROR_TEXT.get(code, (exc.name, exc.description or ""))
        return render_template("errors/error.html", code=code, title=title, message=message), code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        if isinstance(exc, DATABASE_DOWN) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            return database_unavailable(exc)
        # The exception goes to the log (redacted there); the customer sees no internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_template(
            "errors/error.html",
            code=500,
            title=_("Something went wrong"),
            message=_(
                "Sorry, something went wrong on our side. Nothing was charged twice; "
                "please try again in a moment."
            ),
        ), 500
