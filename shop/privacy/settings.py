"""Personal-data settings (SHOP_DATA_KEY*, SHOP_RETENTION_*, SHOP_LEDGER_*), validated at start-up.

`validate` is composed into shop.config's checks and gets the whole Settings; nothing here imports
shop.config at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shop.privacy.crypto import DataKeyError, load_master_key

if TYPE_CHECKING:
    from shop.config import Settings


def validate(s: Settings) -> list[str]:
    problems = []
    if s.production and not s.data_key:
        problems.append(
            "SHOP_DATA_KEY is required in production: it encrypts customers' personal "
            "data (generate one with `shop privacy generate-key`)"
        )
    keys = [("SHOP_DATA_KEY", s.data_key)] + [
        (f"SHOP_DATA_KEY_OLD[{i}]", part)
        for i, part in enumerate(s.data_key_old.split(","))
        if part.strip()
    ]
    for name, text in keys:
        if text:
            try:
                load_master_key(text, name=name)
            except DataKeyError as exc:
                problems.append(str(exc))
    if not 1 <= s.retention_unpaid_hours <= 24 * 365:
        problems.append("SHOP_RETENTION_UNPAID_HOURS must be between 1 and 8760 (a year)")
    if not 1 <= s.retention_fulfilled_days <= 3650:
        problems.append("SHOP_RETENTION_FULFILLED_DAYS must be between 1 and 3650")
    if not 1 <= s.ledger_retention_years <= 30:
        problems.append("SHOP_LEDGER_RETENTION_YEARS must be between 1 and 30")
    return problems
