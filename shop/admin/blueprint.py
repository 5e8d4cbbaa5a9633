"""The merchant's blueprint at /admin and what holds for every page on it.

Every endpoint except the sign-in pages requires a signed-in merchant (`_require_admin`);
tests/admin/test_security.py walks the whole URL map to prove it. The routes are in views.py
and the *_views.py modules beside it, which views.py loads.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from shop.admin.forms import ActionForm
from shop.admin.session import ADMIN_KEY, current_admin
from shop.web.context import settings

bp = Blueprint("admin", __name__, url_prefix="/admin")
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.login_second_factor"})
# Endpoints that accept uploads larger than the shop's 1 MB form limit (signed-in only).
UPLOAD_ENDPOINTS = frozenset({"admin.product_image_upload", "admin.product_file_upload"})


@bp.record_once
def _setup(state) -> None:
    app = state.app

    def raise_upload_limit():
        # Must run before Flask-WTF's CSRF check reads the body under the default limit.
        if request.endpoint in UPLOAD_ENDPOINTS and isinstance(session.get(ADMIN_KEY), dict):
            request.max_content_length = (
                app.extensions["shop.settings"].admin_upload_mb * 1024 * 1024
            )

    app.before_request_funcs.setdefault(None, []).insert(0, raise_upload_limit)


@bp.errorhandler(413)
def _too_large(exc):
    """An upload over the limit: say the limit and lead back to the product."""
    limit = settings().admin_upload_mb
    product_id = (request.view_args or {}).get("product_id")
    back = (
        url_for("admin.product_edit", product_id=product_id)
        if product_id
        else url_for("admin.products")
    )
    return render_template(
        "errors/error.html",
        code=413,
        title="File too large",
        message=f"This file is larger than the shop accepts: at most {limit} MB per upload "
        "(SHOP_ADMIN_UPLOAD_MB). Make it smaller and upload it again.",
        back=back,
        back_label="Back to the product" if product_id else "Back to the products",
    ), 413


@bp.before_request
def _require_admin():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_admin() is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target), 303)
    return None


@bp.teardown_request
def _refresh_storefront(exc: BaseException | None) -> None:
    # Runs after the request's commit: the storefront's short-lived catalog cache must not
    # keep showing what the merchant just changed (price, stock, archived product, image).
    if request.method == "POST":
        cache = current_app.extensions.get("shop.catalog_cache")
        if cache is not None:
            cache.clear()


@bp.after_request
def _no_robots(response):
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.context_processor
def _admin_globals():
    return {"admin_user": g.get("admin_user"), "logout_form": ActionForm(formdata=None)}
