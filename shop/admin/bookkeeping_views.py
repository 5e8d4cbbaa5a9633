"""Admin pages for bookkeeping: VAT summary and the ledger as CSV for a period."""

from __future__ import annotations

from datetime import date

from flask import Response, render_template, request

from shop.admin import bookkeeping
from shop.admin.blueprint import bp
from shop.db import utcnow
from shop.privacy import ledger
from shop.web.context import database, db_session, settings


def _period() -> tuple[date, date, list[str]]:
    today = utcnow().date()
    errors = []
    values = {}
    for name, default in (("start", today.replace(day=1)), ("end", today)):
        raw = request.args.get(name, "")
        try:
            values[name] = date.fromisoformat(raw) if raw else default
        except ValueError:
            errors.append(f"“{raw[:20]}” is not a date such as {default.isoformat()}.")
            values[name] = default
    if values["start"] > values["end"]:
        errors.append("The period must start before it ends.")
        values["start"] = values["end"]
    return values["start"], values["end"], errors


@bp.get("/bookkeeping")
def bookkeeping_page():
    start, end, errors = _period()
    home = settings().country
    rows = bookkeeping.vat_summary(db_session(), start, end, home)
    return render_template(
        "admin/bookkeeping.html",
        start=start,
        end=end,
        errors=errors,
        rows=rows,
        by_rate=bookkeeping.vat_by_rate(rows),
        home=home,
        domestic=bookkeeping.domestic(rows, home),
        oss=bookkeeping.oss_return(rows, home),
    ), (400 if errors else 200)


@bp.get("/bookkeeping/ledger.csv")
def bookkeeping_csv():
    start, end, errors = _period()
    if errors:
        return Response("\n".join(errors) + "\n", status=400, mimetype="text/plain")
    # Streamed on a read-only connection of its own: the request's session is done (and its
    # transaction ended) before the first row is read, and memory stays flat for any period.
    body = ledger.stream_csv(database().engine, start, end)
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="ledger-{start}-{end}.csv"'},
    )
