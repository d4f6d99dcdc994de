"""The house rules, checked: thin tasks that import no other task, glue that knows no model or data, short modules
and functions, no dated or machine-named measurements in code or configs, and a test module for every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from src.config import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
TASKS = ("train", "eval", "predict", "score", "export")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# A date, or the name of a machine a figure was measured on: such figures belong in docs/.
MEASURED = re.compile(r"20\d\d-\d\d-\d\d|Xeon|EPYC|AMX\b|GFLOP|\d\s?ms\b")


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


@pytest.mark.parametrize("task", TASKS)
def test_no_task_imports_another_task(task):
    imported = _imports(SRC / f"{task}.py")
    others = sorted(f"src.{other}" for other in TASKS if other != task and f"src.{other}" in imported)
    assert not others, f"src/{task}.py imports {others}; move what they share below both"


def test_glue_imports_neither_models_nor_data():
    forbidden = ("src.models", "src.data", "src.training", "src.evaluation", "src.inference", "src.postprocess")
    for path in sorted((SRC / "utils").rglob("*.py")) + sorted((SRC / "config").rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith(forbidden))
        assert not bad, f"{_name(path)} imports {bad}"


def test_modules_and_functions_are_short():
    long_modules, long_functions = [], []
    for path in _modules():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{_name(path)} ({lines} lines)")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{_name(path)}:{node.name} ({length} lines)")
    assert not long_modules, f"split these by concept: {long_modules}"
    assert not long_functions, f"split these: {long_functions}"


def test_code_and_configs_carry_no_dated_or_machine_named_measurements():
    files = _modules() + sorted((PROJECT_ROOT / "conf").rglob("*.yaml"))
    hits = [
        f"{_name(path)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if MEASURED.search(line)
    ]
    assert not hits, "measurements belong in docs/ (speed.md, changelog.md):\n" + "\n".join(hits)


def test_every_module_has_its_test_module():
    missing = []
    for path in _modules():
        relative = path.relative_to(SRC)
        if relative.parent == Path(".") and path.stem in TASKS:
            expected = PROJECT_ROOT / "tests" / "cli" / f"test_{path.stem}_cli.py"
        else:
            expected = PROJECT_ROOT / "tests" / relative.parent / f"test_{path.stem}.py"
        if not expected.is_file():
            missing.append(f"{_name(path)} -> {_name(expected)}")
    assert not missing, "modules without a test module:\n" + "\n".join(missing)
