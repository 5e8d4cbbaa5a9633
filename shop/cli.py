"""The `shop` command: a Flask CLI group (run, demo, db, worker)."""

from __future__ import annotations

import logging
import os
import sys
import threading

import click
from flask import current_app
from flask.cli import FlaskGroup
from werkzeug.serving import run_simple

from shop import create_app
from shop.admin.cli import admin
from shop.catalog.search import ensure_language
from shop.config import ConfigError
from shop.demo import seed_demo, seed_ebook_files, seed_legal_samples
from shop.jobs.heartbeat import Heartbeat
from shop.jobs.logs import configure_logging
from shop.jobs.worker import JOBS, run_forever, serve
from shop.migrate import upgrade
from shop.privacy.cli import privacy
from shop.privacy.logging import PrivateRequestHandler, install_redaction


def _create_app():
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def cli() -> None:
    """A self-hosted web shop. Settings come from SHOP_* environment variables."""


@cli.group()
def db() -> None:
    """Database schema (created and changed only by migrations)."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    database = current_app.extensions["shop.db"]
    click.echo(upgrade(database.engine, revision).describe())
    # The search index follows SHOP_LOCALE: after a change of language, rebuild it once here.
    with database.engine.begin() as conn:
        if ensure_language(conn, database.search_config):
            click.echo(f"Rebuilt the product search index for {database.search_config!r}.")


@cli.command()
def worker() -> None:
    """Run background jobs (order expiry, ...) until stopped with Ctrl-C or SIGTERM."""
    settings = current_app.extensions["shop.settings"]
    configure_logging(settings.log_format)
    sys.exit(serve(current_app.extensions["shop.db"], settings))  # graceful on SIGTERM


@cli.command(with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Start a demo shop with a sample catalog on SQLite, with demo payments and the worker."""
    _configure_logging("%(levelname)s %(name)s: %(message)s")
    overrides = {
        "demo_payments": os.environ.get("SHOP_DEMO_PAYMENTS", "1")
        not in ("0", "false", "no", "off")
    }
    if not os.environ.get("SHOP_BITCOIN_DESCRIPTOR"):
        overrides["bitcoin_simulated"] = True  # pretend Bitcoin payments on a simulated chain
    try:
        app = create_app(overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    settings = app.extensions["shop.settings"]
    if settings.production:
        raise click.ClickException(
            "`shop demo` is for trying the shop out; unset SHOP_ENV=production"
        )
    database = app.extensions["shop.db"]
    upgrade(database.engine)
    created = seed_demo(database, settings)
    seed_ebook_files(database, settings)
    seed_legal_samples(database)
    click.echo(
        f"sample catalog {'created' if created else 'already present'} in {settings.instance_path}"
    )
    stop = threading.Event()
    heartbeat = Heartbeat(database, [job.name for job in JOBS])  # the admin shows it running
    threading.Thread(
        target=run_forever,
        args=(database, 5.0, stop),
        daemon=True,
        kwargs={"heartbeat": heartbeat},
        name="shop-worker",
    ).start()
    click.echo(f"demo shop on http://{host}:{port}/  (Ctrl-C to stop)")
    # Flask refuses app.run() inside its own CLI; werkzeug's server is what it would start.
    run_simple(host, port, app, threaded=True, request_handler=_request_handler())
    stop.set()


def _configure_logging(fmt: str) -> None:
    logging.basicConfig(level=logging.INFO, format=fmt)
    install_redaction()


def _request_handler():
    # The development server's own handler logs client IP addresses and query strings.
    return PrivateRequestHandler


def _add_feature_commands() -> None:
    cli.add_command(privacy)
    cli.add_command(admin)


_add_feature_commands()


def main() -> None:
    cli(prog_name="shop")


if __name__ == "__main__":  # pragma: no cover
    main()
