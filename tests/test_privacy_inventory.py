"""Every column marked personal in the models is in docs/PRIVACY.md, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from shop.models import metadata

INVENTORY = Path(__file__).resolve().parent.parent / "docs" / "PRIVACY.md"


def _inventory_columns() -> set[str]:
    names = set()
    for line in INVENTORY.read_text().splitlines():
        match = re.match(r"\|\s*`([a-z_]+\.[a-z_]+)`\s*\|", line)
        if match:
            names.add(match.group(1))
    return names


def _marked_columns() -> set[str]:
    return {
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        for column in table.columns
        if column.info.get("personal")
    }


def test_inventory_matches_marked_columns():
    marked, listed = _marked_columns(), _inventory_columns()
    assert marked, "no column is marked personal: the marking is broken"
    assert marked - listed == set(), (
        f"personal columns missing from docs/PRIVACY.md: {marked - listed}"
    )
    assert listed - marked == set(), (
        f"docs/PRIVACY.md lists columns that are not marked: {listed - marked}"
    )
