"""The merchant's sign-in, kept in the shop's one session cookie under its own key.

The cookie is signed, so it cannot be forged; it can be stolen, so it also carries the
account's `session_version` (bumped on logout and password change) and two clocks: idle
time since the last request and total time since sign-in.
"""

from __future__ import annotations

import time

from flask import flash, g, session
from flask_babel import gettext as _

from shop.admin.models import AdminUser
from shop.web.context import db_session, settings

ADMIN_KEY = "admin"
PENDING_KEY = "admin_2fa"
PENDING_SECONDS = 300


def sign_in(user: AdminUser) -> None:
    now = time.time()
    # A fresh session: a cookie planted before sign-in (session fixation) and its CSRF token
    # are gone, and the customer-side contents (cart) are not carried into the admin.
    session.clear()
    session.permanent = True
    session[ADMIN_KEY] = {"uid": user.id, "v": user.session_version, "at": now, "seen": now}


def sign_out(user: AdminUser | None) -> None:
    if user is not None:
        user.session_version += 1  # every other copy of this cookie stops working too
    session.clear()


def start_second_factor(user: AdminUser) -> None:
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "v": user.session_version, "at": time.time()}


def pending_user() -> AdminUser | None:
    data = session.get(PENDING_KEY)
    if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    user = db_session().get(AdminUser, int(data.get("uid", 0)))
    if user is None or not user.active or user.session_version != data.get("v"):
        return None
    return user


def current_admin() -> AdminUser | None:
    """The signed-in merchant for this request, or None (and the stale sign-in is dropped)."""
    if "admin_user" in g:
        return g.admin_user
    g.admin_user = None
    data = session.get(ADMIN_KEY)
    if not isinstance(data, dict):
        return None
    s, now = settings(), time.time()
    try:
        uid, version = int(data["uid"]), int(data["v"])
        signed_in, seen = float(data["at"]), float(data["seen"])
    except (KeyError, TypeError, ValueError):
        session.pop(ADMIN_KEY, None)
        return None
    if now - seen > s.admin_idle_minutes * 60 or now - signed_in > s.admin_session_hours * 3600:
        session.pop(ADMIN_KEY, None)
        flash(
            _("You were signed out after a period of inactivity. Please sign in again."), "warning"
        )
        return None
    user = db_session().get(AdminUser, uid)
    if user is None or not user.active or user.session_version != version:
        session.pop(ADMIN_KEY, None)
        return None
    session[ADMIN_KEY] = {**data, "seen": now}
    g.admin_user = user
    return user
