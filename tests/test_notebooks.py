"""The notebooks run top to bottom (nbclient, a real kernel) and are committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from src.config import PROJECT_ROOT
from tests.conftest import SHARED_ISBI, run_cli

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_isbi2012.ipynb", "02_inspect_a_run.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path: Path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name} holds outputs; strip them: python scripts/strip_notebooks.py"
            )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("logs")
    result = run_cli(
        "src.train",
        "data=synthetic",
        "model.base_channels=4",
        "model.depth=3",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "logger=csv",
        f"paths.log_dir={log_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (log_dir / "train" / "runs").iterdir()
    return run


def _execute(path: Path, monkeypatch, **env: str) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(PROJECT_ROOT)}}
    ).execute()
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def test_explore_notebook_runs_on_the_real_stack(monkeypatch):
    notebook = _execute(NOTEBOOKS[0], monkeypatch, EMUNET_DATA_OVERRIDES="data=isbi2012")
    text = _text(notebook)
    assert "30 slices of 512 x 512" in text and "membrane fraction: 0.1" in text
    assert _images(notebook) >= 6  # slices, balance, cells, augmentations, crops, weight map


def test_run_notebook_inspects_a_tiny_run(tiny_run: Path, monkeypatch):
    notebook = _execute(
        NOTEBOOKS[1],
        monkeypatch,
        EMUNET_RUN_DIR=str(tiny_run),
        EMUNET_PREDICT_STACK=str(SHARED_ISBI / "test-volume.tif"),
    )
    text = _text(notebook)
    held = json.loads((tiny_run / "metrics.json").read_text())["held_out"]
    assert f"held-out V_rand {held['threshold']['vrand']:.4f}" in text
    assert "nothing to predict" not in text
    assert _images(notebook) >= 5  # curves, results figure, scores, errors, test-volume prediction
