"""The rules docs/ARCHITECTURE.md states, checked on every run of the test command.

Each check runs the tool the project pins in its `test` extra over the checkout; a failure prints
the tool's own report, so the fix is where it points.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def check(*args: str) -> None:
    result = run(*args)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


def test_ruff_lint_passes():
    check("ruff", "check", "--output-format", "concise", ".")


def test_code_is_formatted():
    check("ruff", "format", "--check", ".")


def test_import_contracts():
    """The layers and the rules between features: pyproject.toml, [tool.importlinter]."""
    # import-linter has no `python -m` entry: run what its `lint-imports` script runs, from the
    # checkout (the current directory comes first on sys.path), without writing a cache there.
    script = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    result = subprocess.run(
        [sys.executable, "-c", script, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"lint-imports failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


def test_only_the_request_and_job_scopes_commit():
    """docs/ARCHITECTURE.md: a view or service that commits splits the request's unit of work."""
    scopes = {"shop/db.py", "shop/web/context.py"}
    committing = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "shop").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in scopes
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ".commit()" in line.split("#")[0]
    ]
    assert not committing, "commit only in the request or job scope:\n" + "\n".join(committing)


def test_config_is_composed_without_an_import_cycle():
    """shop.config composes the features' settings validators; nothing it imports may import
    shop.config back at run time (imports inside functions count; `if TYPE_CHECKING:` ones don't),
    or loading the settings depends on import order."""
    graph = grimp.build_graph("shop", exclude_type_checking_imports=True, cache_dir=None)
    back = {
        module: graph.find_shortest_chain(importer=module, imported="shop.config")
        for module in graph.find_modules_directly_imported_by("shop.config")
    }
    assert {module: chain for module, chain in back.items() if chain} == {}


def test_types_check():
    check("mypy")


def test_architecture_names_every_module():
    """docs/ARCHITECTURE.md's layout lists each module and package of shop/ (and of shop/payments/):
    a module added or moved without a word there fails here."""
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    layout = doc[doc.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    missing = []
    for folder in (ROOT / "shop", ROOT / "shop" / "payments"):
        for path in sorted(folder.iterdir()):
            if path.name.startswith("_") or not (
                path.suffix == ".py" or (path / "__init__.py").exists()
            ):
                continue
            name = str(path.relative_to(ROOT)) + ("/" if path.is_dir() else "")
            if name.removesuffix(".py") not in layout:
                missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md's layout does not mention: {missing}"


def test_imports_inside_functions_say_why():
    """An import inside a function hides a dependency (and a cycle) from the contracts and makes
    an in-place upgrade load new code into an old process: at the top, or a comment just above
    it saying why not."""
    unexplained = []
    for path in sorted((ROOT / "shop").rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    above = lines[max(0, inner.lineno - 4) : inner.lineno - 1]
                    if not any(line.strip().startswith("#") for line in above):
                        unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert not unexplained, "move to the top or say why:\n" + "\n".join(unexplained)
