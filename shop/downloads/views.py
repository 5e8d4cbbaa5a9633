"""The customer's download: a POST from their order page (a prefetched link cannot use it up)."""

from __future__ import annotations

from flask import Blueprint, render_template, send_file
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SubmitField

from shop.downloads import service
from shop.web.context import db_session, settings
from shop.web.forms import ShopForm

bp = Blueprint("downloads", __name__, url_prefix="/downloads")


class DownloadForm(ShopForm):
    submit = SubmitField(_l("Download"))


@bp.record_once
def _setup(state) -> None:
    def order_downloads(order):
        return service.offered(db_session(), order)

    state.app.jinja_env.globals["order_downloads"] = order_downloads
    state.app.jinja_env.globals["DownloadForm"] = DownloadForm


@bp.post("/<token>")
def download(token: str):
    form = DownloadForm()
    if not form.validate_on_submit():
        return render_template(
            "errors/error.html",
            code=400,
            title=_("Form expired"),
            message=_("Please reload your order page and try again."),
        ), 400
    try:
        path, name = service.take_download(db_session(), token, settings().instance_path)
    except service.DownloadUnavailable as exc:
        return render_template(
            "errors/error.html", code=410, title=_("Download not available"), message=str(exc)
        ), 410
    # The request scope commits the count (after_request) before the server streams the file.
    response = send_file(path, as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
