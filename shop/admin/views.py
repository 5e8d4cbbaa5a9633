"""The merchant's pages at /admin: sign-in, account, dashboard. Views stay thin.

Importing this module loads every admin page (the *_views modules beside it) onto `bp`, the
blueprint of shop/admin/blueprint.py, which requires a signed-in merchant everywhere.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

import segno
from flask import (
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import func, select

from shop.admin import (  # noqa: F401  (the *_views modules put their routes on bp)
    auth,
    bookkeeping_views,
    health,
    legal_views,
    order_views,
    product_views,
    settings_views,
)
from shop.admin import throttle as signin_throttle
from shop.admin.blueprint import bp
from shop.admin.forms import (
    ActionForm,
    ConfirmTotpForm,
    DisableTotpForm,
    LoginForm,
    PasswordForm,
    ReauthForm,
    SecondFactorForm,
)
from shop.admin.session import (
    current_admin,
    pending_user,
    sign_in,
    sign_out,
    start_second_factor,
)
from shop.db import utcnow
from shop.legal.service import PAGES
from shop.mail.models import FAILED, PENDING, OutboxMessage
from shop.orders.models import Order
from shop.orders.states import OrderStatus
from shop.payments.registry import available_methods
from shop.web.context import database, db_session, defer_write_lock, payment_methods, settings
from shop.web.forms import has_control_characters


def _safe_next(target: str | None) -> str:
    if has_control_characters(target):
        # A CR/LF in the Location header would make the redirect itself fail.
        return url_for("admin.dashboard")
    parts = urlsplit(target or "")
    if (
        target
        and not parts.scheme
        and not parts.netloc
        and parts.path.startswith("/admin")
        and "\\" not in target
    ):
        return target
    return url_for("admin.dashboard")


def _too_many(wait: float, form, template: str):
    minutes = max(1, math.ceil(wait / 60))
    flash(
        f"Too many failed attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''} "
        "and try again.",
        "error",
    )
    return render_template(template, form=form), 429


# ---------------------------------------------------------------- sign-in


@bp.route("/login", methods=["GET", "POST"])
def login():
    defer_write_lock()  # the password check is slow: no SQLite write lock meanwhile
    if request.method == "GET" and current_admin() is not None:
        return redirect(_safe_next(request.args.get("next")), 303)
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), (400 if form.is_submitted() else 200)
    username = form.username.data
    keys = _throttle_keys(username)
    wait = signin_throttle.wait_seconds(db_session(), keys, utcnow())
    # Checked even when throttled: with two-factor authentication on, the right password and a
    # valid code always get the owner in, so guessing cannot lock them out.
    user = auth.authenticate(db_session(), username, form.password.data)
    if user is None:
        _count_failure(keys)
        if wait > 0:
            return _too_many(wait, form, "admin/login.html")
        flash(_("Wrong user name or password."), "error")
        return render_template("admin/login.html", form=form), 401
    target = _safe_next(form.next.data)
    if user.totp_enabled:
        start_second_factor(user)
        return redirect(url_for("admin.login_second_factor", next=target), 303)
    if wait > 0:
        return _too_many(wait, form, "admin/login.html")
    signin_throttle.clear(db_session(), keys[:1])
    sign_in(user)
    return redirect(target, 303)


def _throttle_keys(username: str) -> list[str]:
    return [
        signin_throttle.user_key(username),
        signin_throttle.client_key(settings().secret_key, request.remote_addr, utcnow()),
    ]


def _count_failure(keys: list[str]) -> None:
    # The request's own transaction is rolled back with its 4xx answer: count in another one.
    with database().job_session() as session:
        signin_throttle.record_failure(session, keys, utcnow())


def _second_factor_ok(user, code: str) -> bool:
    """A valid authenticator code (unless too many wrong ones were tried today) or recovery code."""
    code = (code or "").strip()
    if not code:
        return False
    guessed = signin_throttle.failures(
        db_session(), signin_throttle.code_key(user.username), utcnow()
    )
    if guessed < signin_throttle.POLICY.code_limit and auth.verify_totp(user, code):
        return True
    return auth.use_recovery_code(db_session(), user, code)


def _reauthenticated(user, password: str, code: str) -> bool:
    """The password again, and a second factor when it is on: for changes to the account."""
    keys = _throttle_keys(user.username) + [signin_throttle.code_key(user.username)]
    wait = signin_throttle.wait_seconds(db_session(), keys[:2], utcnow())
    ok = auth.authenticate(db_session(), user.username, password) is not None
    if ok and user.totp_enabled:
        ok = _second_factor_ok(user, code)
    if ok and (wait <= 0 or user.totp_enabled):
        return True
    if not ok:
        _count_failure(keys)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        flash(
            f"Too many failed attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''} "
            "and try again.",
            "error",
        )
    else:
        flash(
            _("The password or code is not correct.")
            if user.totp_enabled
            else "The password is not correct.",
            "error",
        )
    return False


@bp.route("/login/code", methods=["GET", "POST"])
def login_second_factor():
    defer_write_lock()  # the password check is slow: no SQLite write lock meanwhile
    user = pending_user()
    if user is None:
        flash(_("Please sign in first."), "warning")
        return redirect(url_for("admin.login"), 303)
    form = SecondFactorForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if not form.validate_on_submit():
        return render_template("admin/login_code.html", form=form), (
            400 if form.is_submitted() else 200
        )
    keys = _throttle_keys(user.username)
    wait = signin_throttle.wait_seconds(db_session(), keys, utcnow())
    if not _second_factor_ok(user, form.code.data):
        _count_failure(keys + [signin_throttle.code_key(user.username)])
        if wait > 0:
            return _too_many(wait, form, "admin/login_code.html")
        flash(_("That code is not correct."), "error")
        return render_template("admin/login_code.html", form=form), 401
    signin_throttle.clear(db_session(), keys[:1] + [signin_throttle.code_key(user.username)])
    sign_in(user)
    left = auth.remaining_recovery_codes(user)
    if left < 3:
        flash(f"Only {left} recovery codes are left: make new ones under Account.", "warning")
    return redirect(_safe_next(form.next.data), 303)


@bp.post("/logout")
def logout():
    if not ActionForm().validate_on_submit():
        abort(400)
    sign_out(g.admin_user)
    flash(_("You are signed out."), "success")
    return redirect(url_for("admin.login"), 303)


# ---------------------------------------------------------------- dashboard


@bp.get("")
def dashboard():
    db = db_session()
    to_ship = db.scalar(
        select(func.count())
        .select_from(Order)
        .where(Order.status == OrderStatus.PAID.value, Order.requires_shipping.is_(True))
    )
    tasks = db.scalar(select(func.count()).select_from(Order).where(Order.attention.is_not(None)))
    pending = db.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == PENDING)
    )
    failed = db.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == FAILED)
    )
    can_sell = bool(available_methods(payment_methods()))
    setup = health.setup_checklist(db, settings(), can_sell)
    # What needs looking at now (a stopped worker, email that does not go out), not only
    # under Settings.
    problems = [c for c in health.checks(db, settings()) if c.status == health.WARN]
    # In production an empty legal page is a legal risk, not a to-do: say so at the top.
    legal_missing = (
        [PAGES[slug] for slug in health.missing_legal_pages(db)] if settings().production else []
    )
    return render_template(
        "admin/dashboard.html",
        to_ship=to_ship,
        tasks=tasks,
        mail_pending=pending,
        mail_failed=failed,
        can_sell=can_sell,
        setup=setup,
        problems=problems,
        legal_missing=legal_missing,
    )


# ---------------------------------------------------------------- account


@bp.get("/account")
def account():
    user = g.admin_user
    return render_template(
        "admin/account.html",
        action=ActionForm(),
        password_form=PasswordForm(),
        disable_form=DisableTotpForm(prefix="disable"),
        codes_form=ReauthForm(prefix="codes"),
        recovery_left=auth.remaining_recovery_codes(user),
    )


@bp.post("/account/password")
def account_password():
    defer_write_lock()  # the password check is slow: no SQLite write lock meanwhile
    form, user = PasswordForm(), g.admin_user
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for e in errors:
                flash(e, "error")
        return redirect(url_for("admin.account"), 303)
    if not _reauthenticated(user, form.current.data, form.code.data):
        return redirect(url_for("admin.account"), 303)
    auth.set_password(db_session(), user, form.new.data)
    sign_in(user)  # the old cookies died with the version bump; this one carries the new one
    flash(_("Password changed. Other sessions were signed out."), "success")
    return redirect(url_for("admin.account"), 303)


@bp.post("/account/2fa/start")
def totp_start():
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        auth.begin_totp(g.admin_user)
    except auth.AdminError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.account"), 303)
    return redirect(url_for("admin.totp_setup"), 303)


@bp.route("/account/2fa", methods=["GET", "POST"])
def totp_setup():
    user = g.admin_user
    if user.totp_enabled or not user.totp_secret:
        return redirect(url_for("admin.account"), 303)
    form = ConfirmTotpForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = auth.confirm_totp(db_session(), user, form.code.data)
        except auth.AdminError as exc:
            form.code.errors = [*form.code.errors, str(exc)]
            status = 400
        else:
            return render_template("admin/recovery_codes.html", codes=codes)
    elif form.is_submitted():
        status = 400
    uri = auth.provisioning_uri(user, settings().store_name)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, dark="#000", light="#fff")
    return render_template(
        "admin/totp_setup.html", form=form, qr=qr, secret=user.totp_secret
    ), status


@bp.post("/account/2fa/recovery-codes")
def totp_new_codes():
    defer_write_lock()  # the password check is slow: no SQLite write lock meanwhile
    form = ReauthForm(prefix="codes")
    if not form.validate_on_submit():
        abort(400)
    if not g.admin_user.totp_enabled:
        abort(409)
    if not _reauthenticated(g.admin_user, form.password.data, form.code.data):
        return redirect(url_for("admin.account"), 303)
    return render_template(
        "admin/recovery_codes.html", codes=auth.new_recovery_codes(db_session(), g.admin_user)
    )


@bp.post("/account/2fa/disable")
def totp_disable():
    defer_write_lock()  # the password check is slow: no SQLite write lock meanwhile
    form, user = DisableTotpForm(prefix="disable"), g.admin_user
    if not form.validate_on_submit() or not _reauthenticated(
        user, form.password.data, form.code.data
    ):
        flash(_("Two-factor authentication stays on."), "error")
        return redirect(url_for("admin.account"), 303)
    auth.disable_totp(db_session(), user)
    flash(_("Two-factor authentication is off."), "success")
    return redirect(url_for("admin.account"), 303)
