"""Where Stripe sends the customer back to: the card routes of views.py, as absolute URLs.

Apart from views.py because the method needs them too (cancelling may replay the request that
created a customer's page), and the method sits below the views.
"""

from __future__ import annotations

from flask import url_for

from shop.web.context import settings


def _external(endpoint: str) -> str:
    base = settings().base_url
    if base:
        return base.rstrip("/") + url_for(endpoint)
    return url_for(endpoint, _external=True)


def return_urls() -> tuple[str, str]:
    """The success and cancel URLs sent with every Checkout Session (needed again to replay a
    request whose answer was lost)."""
    # Stripe fills in {CHECKOUT_SESSION_ID}; it is not a format placeholder here.
    return (
        _external("card.returned") + "?session_id={CHECKOUT_SESSION_ID}",
        _external("card.cancelled"),
    )
