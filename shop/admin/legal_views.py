"""Admin pages to write the legal pages."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import Length

from shop.admin.blueprint import bp
from shop.legal import service
from shop.web.context import db_session
from shop.web.forms import ShopForm


class LegalForm(ShopForm):
    body = TextAreaField(
        _l("Text (plain text; an empty line starts a new paragraph)"),
        validators=[Length(max=service.MAX_BODY)],
    )
    submit = SubmitField(_l("Publish"))


def _imprint_form():
    class ImprintForm(LegalForm):
        pass

    for name, label in service.IMPRINT_FIELDS.items():
        widget = TextAreaField if name == "address" else StringField
        setattr(ImprintForm, name, widget(label, validators=[Length(max=500)]))
    return ImprintForm


@bp.get("/legal")
def legal_pages():
    db = db_session()
    pages = {slug: service.get_page(db, slug) for slug in service.PAGES}
    return render_template("admin/legal.html", pages=pages, titles=service.PAGES)


@bp.route("/legal/<slug>", methods=["GET", "POST"])
def legal_edit(slug: str):
    if slug not in service.PAGES:
        abort(404)
    stored = service.get_page(db_session(), slug)
    form_class = _imprint_form() if slug == "imprint" else LegalForm
    form = form_class()
    if form.validate_on_submit():
        fields = (
            {name: getattr(form, name).data for name in service.IMPRINT_FIELDS}
            if slug == "imprint"
            else None
        )
        service.save_page(db_session(), slug, form.body.data or "", fields)
        flash(f"{service.PAGES[slug]} published.", "success")
        return redirect(url_for("admin.legal_edit", slug=slug), 303)
    if not form.is_submitted():
        form.body.data = stored.body if stored else ""
        if slug == "imprint":
            for name, value in service.imprint_fields(stored).items():
                getattr(form, name).data = value
    return render_template(
        "admin/legal_edit.html",
        form=form,
        slug=slug,
        title=service.PAGES[slug],
        fields=list(service.IMPRINT_FIELDS) if slug == "imprint" else [],
    ), (400 if form.is_submitted() else 200)
