"""`python -m src.eval` as a user runs it: the held-out scores of a checkpoint by its recipe, its report, the
other post-processings compared."""

import json

import lightning as L
import pytest

from src.data.datamodule import EMDataModule
from src.data.sources import SyntheticSource
from src.evaluation.held_out import predict_slices, stacked
from src.inference.recipe import default_recipe
from src.metrics.isbi import score_probabilities
from src.models.checkpoint import load_module
from tests.conftest import run_cli


def test_eval_of_a_checkpoint_without_a_recipe_follows_the_default_one_and_takes_overrides(small_checkpoint, tmp_path):
    result = run_cli(
        "src.eval",
        "data=synthetic",
        "data.fold=4",
        f"ckpt_path={small_checkpoint}",
        "tta=[0,3]",
        "figure_slices=0",
        "trainer.accelerator=cpu",
        "trainer.precision=32",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(the default recipe (this checkpoint carries none), overridden: tta)" in result.stdout
    (run,) = (tmp_path / "eval" / "runs").iterdir()
    saved = json.loads((run / "metrics.json").read_text())
    recipe = {**default_recipe(), "tta": [0, 3]}
    assert saved["recipe"] == recipe and saved["slices"] == [8, 9]

    # The same checkpoint, slices and recipe in this process give the same sweep, which is the headline.
    datamodule = EMDataModule(SyntheticSource(num_slices=10, size=128, num_cells=30, seed=0), fold=4)
    datamodule.setup()
    trainer = L.Trainer(accelerator="cpu", precision="32", logger=False)
    probs, labels, ids = stacked(
        predict_slices(load_module(small_checkpoint), datamodule.subset("test"), trainer, recipe)
    )
    expected = score_probabilities(probs, labels, slice_ids=ids)
    assert saved["headline"]["vrand"] == saved["threshold"]["vrand"]
    assert saved["headline"]["vrand"] == pytest.approx(expected["vrand"], abs=1e-6)
    assert saved["headline"]["prediction"] == "predictions/test_probability.tif"

    assert set(saved["compared"]) == {"components", "agglomeration"}  # the recipe's watershed is scored once
    assert set(saved["compared"]["agglomeration"]["contours"]) == {
        "vrand",
        "vinfo",
        "threshold",
        "vinfo_threshold",
        "per_slice",
    }
    report = (run / "report.md").read_text()
    assert "headline: interior probability, best of the threshold sweep" in report
    assert "| compared: cells of Agglomeration (" in report and "| cells of SeededWatershed at its fixed cut" in report
    assert not (run / "figures").exists()


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("data=vnc2013", "predicts the classes ['membrane', 'interior'] but data.classes names ['membrane', 'glia'"),
        ("tta=[9]", "tta=[9] must be true, false or a list of transforms 0..7"),
        ("postprocess=mutex_watershed", "reads affinities, but this network predicts classes only"),
    ],
)
def test_a_recipe_or_data_config_the_checkpoint_cannot_take_is_refused_before_lightning(
    small_checkpoint, tmp_path, setting, words
):
    from tests.conftest import imported_modules

    args = ["data=synthetic", f"ckpt_path={small_checkpoint}", setting, f"paths.log_dir={tmp_path}"]
    result = run_cli("src.eval", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 2 and words in result.stderr, result.stderr[-2000:]
    assert "src.models.checkpoint" in imported_modules(result) and "lightning" not in imported_modules(result)
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # no run folder kept, nothing written
