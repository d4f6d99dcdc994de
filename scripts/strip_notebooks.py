"""Strip outputs and execution counts from the project's notebooks: ``python scripts/strip_notebooks.py``.

Notebooks are committed without outputs (a test checks); run this before committing one you executed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def strip(path: Path) -> bool:
    """Remove outputs from ``path`` in place; True when something was removed."""
    notebook = nbformat.read(path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
    if changed:
        nbformat.write(notebook, path)
    return changed


def main(paths: list[str]) -> None:
    targets = [Path(p) for p in paths] or sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    for path in targets:
        print(f"{'stripped' if strip(path) else 'clean   '} {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
