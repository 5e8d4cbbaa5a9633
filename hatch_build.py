"""Wheel build hook: compile the gettext catalogs (.po -> .mo) into the wheel.

The compiled files are build output, not sources, so they are not committed: a plain
`pip install .` (or `python -m build`) compiles them here with Babel, the library the shop
already uses at run time. A catalog that does not compile fails the build.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileCatalogs(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # an editable install reads the source tree, which compiles on first use
        root = Path(self.root) / "shop" / "translations"
        self._out = tempfile.TemporaryDirectory(prefix="shop-mo-")
        for po in sorted(root.glob("*/LC_MESSAGES/*.po")):
            with po.open("rb") as f:
                catalog = read_po(f, locale=po.parent.parent.name)
            mo = Path(self._out.name) / po.relative_to(root).with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)
            build_data["force_include"][str(mo)] = (
                f"shop/translations/{po.relative_to(root).with_suffix('.mo').as_posix()}"
            )

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_out", None) is not None:
            self._out.cleanup()
