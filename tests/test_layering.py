"""Import arrows run one way: shared core <- stages <- orchestration (``robot_rl.app``).

Every module is read with ``ast`` (nothing is imported), so lazy imports inside functions
and module names handed to ``importlib.import_module`` count as much as top-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sysid", "actuator_net", "policies", "deploy")
APP = "robot_rl.app"


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, wherever it sits."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) in ("import_module", "__import__"))):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _modules(package: Path, exclude: Path | None = None) -> list[Path]:
    return sorted(p for p in package.rglob("*.py")
                  if exclude is None or exclude not in p.parents)


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{line} imports {m}"
            for p in files for line, m in imported_modules(p.read_text())
            if any(_is_under(m, f) for f in forbidden)]


CORE = _modules(ROOT / "robot_rl", exclude=ROOT / "robot_rl" / "app")


def test_scan_sees_every_kind_of_import():
    src = ("import deploy.runtime\n"
           "def f():\n"
           "    from policies import train\n"
           "    import importlib\n"
           "    importlib.import_module('sysid.cli')\n"
           "from robot_rl import app\n")
    mods = [m for _, m in imported_modules(src)]
    assert "deploy.runtime" in mods and "policies" in mods and "sysid.cli" in mods
    assert any(_is_under(m, APP) for m in mods)  # `from robot_rl import app` is caught
    assert not _is_under("deployment", "deploy")


def test_scan_covers_the_core():
    names = {p.relative_to(ROOT).as_posix() for p in CORE}
    assert {"robot_rl/robot.py", "robot_rl/collect.py", "robot_rl/rl/runner.py"} <= names
    assert not any(n.startswith("robot_rl/app/") for n in names)


def test_shared_core_imports_no_stage():
    """robot_rl/ (minus the orchestration package) is what every stage builds on."""
    assert _violations(CORE, STAGES) == []


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_orchestration(stage):
    assert _violations(_modules(ROOT / stage), (APP,)) == []


def test_orchestration_is_where_the_stages_are_imported():
    """The app package does import the stages: the scan would notice if it did not."""
    assert _violations(_modules(ROOT / "robot_rl" / "app"), STAGES) != []
