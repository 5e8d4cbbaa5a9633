"""`shop privacy ...`: purge, key rotation, ledger export."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from shop.db import utcnow
from shop.privacy.crypto import generate_master_key_text
from shop.privacy.ledger import stream_csv
from shop.privacy.purge import purge as run_purge
from shop.privacy.store import rotate_keys


def _database():
    return current_app.extensions["shop.db"]


def _parse_moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date such as 2027-01-31 or 2027-01-31T12:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date such as 2026-12-31", param_hint=name
        ) from None


@click.group()
def privacy() -> None:
    """Personal data: erasure, encryption keys, bookkeeping ledger."""


@privacy.command()
@click.option("--dry-run", is_flag=True, help="List what would be erased; change nothing.")
@click.option(
    "--as-of",
    "as_of",
    metavar="ISO-DATE",
    help="Evaluate retention windows as of this moment (UTC unless given).",
)
@with_appcontext
def purge(dry_run: bool, as_of: str | None) -> None:
    """Erase personal data whose retention period is over, and expired ledger entries."""
    moment = _parse_moment(as_of)
    if moment is not None and moment > utcnow() and not dry_run:
        raise click.BadParameter(
            "a future moment only shows what would happen: add --dry-run", param_hint="--as-of"
        )
    with _database().job_session() as session:
        report = run_purge(
            session, current_app.extensions["shop.settings"], as_of=moment, dry_run=dry_run
        )
        if dry_run:
            session.rollback()
    verb = "would erase" if dry_run else "erased"
    for item in report.orders:
        click.echo(
            f"{item.number}  {item.status:<18}  due {item.due_at:%Y-%m-%d %H:%M} UTC  "
            f"({item.reason})"
        )
    click.echo(
        f"{verb} personal data of {len(report.orders)} order(s) as of "
        f"{report.as_of:%Y-%m-%d %H:%M} UTC"
    )
    click.echo(
        f"{'would delete' if dry_run else 'deleted'} {report.ledger_entries_deleted} "
        "ledger entr(y/ies) past the fiscal retention period"
    )


@privacy.command("rotate-key")
@with_appcontext
def rotate_key() -> None:
    """Re-wrap the epoch keys under the current SHOP_DATA_KEY; move older data keys into epochs.

    Set the new key in SHOP_DATA_KEY and the previous one in SHOP_DATA_KEY_OLD first; when
    this reports nothing left under an old key, remove SHOP_DATA_KEY_OLD.
    """
    keyring = current_app.extensions["shop.keyring"]
    with _database().job_session() as session:
        result = rotate_keys(session, keyring)
    click.echo(
        f"re-wrapped {result.epoch_files_rewrapped} epoch key(s) under master key "
        f"{keyring.current.key_id}; {result.epoch_files_current} already used it; "
        f"moved {result.moved_to_epochs} older data key(s) into epochs"
    )


@privacy.command("generate-key")  # no app: production cannot start without a key yet
def generate_key() -> None:
    """Print a fresh random value for SHOP_DATA_KEY."""
    click.echo(generate_master_key_text())


@privacy.command("ledger-export")
@click.option("--from", "start", required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
@click.option("--to", "end", required=True, metavar="YYYY-MM-DD", help="last day (UTC), included")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="file to write (default: standard output)",
)
@with_appcontext
def ledger_export(start: str, end: str, output) -> None:
    """Write the bookkeeping ledger of a period as CSV (one row per entry and VAT rate)."""
    first, last = _parse_date(start, "--from"), _parse_date(end, "--to")
    if last < first:
        raise click.BadParameter("--to must not be before --from", param_hint="--to")
    for chunk in stream_csv(_database().engine, first, last):
        output.write(chunk)
