"""--help text read from each task's entry config: description, examples, every key with its comment, groups."""

import dataclasses

import pytest

from src.config import schemas
from src.config.help import task_help

SCHEMAS = {
    "train": schemas.TrainSchema,
    "eval": schemas.EvalSchema,
    "predict": schemas.PredictSchema,
    "score": schemas.ScoreSchema,
    "export": schemas.ExportSchema,
}
GROUP_NODES = {"data", "model", "optimizer", "scheduler", "loss", "postprocess", "trainer", "logger", "callbacks"}


@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_help_describes_the_task_with_examples_and_lists_every_own_key(task):
    text = task_help(task)
    lines = text.replace("$$", "$").splitlines()
    assert lines[0].startswith(f"python -m src.{task}: ")
    assert "Examples:" in text and f"  python -m src.{task} " in text
    own = [f.name for f in dataclasses.fields(SCHEMAS[task]) if f.name not in {"task_name", "paths", "inference"}]
    for key in own:
        if key in GROUP_NODES or key == "compare":
            continue
        assert any(line.startswith(f"{key}:") for line in lines), f"{task} --help lacks {key}"
    assert "$" not in text.replace("$$", "")  # Hydra substitutes single $ names in a help template


def test_train_help_lists_the_recipe_keys_and_its_groups_with_defaults():
    lines = task_help("train").splitlines()
    assert any(line.startswith("inference.tile_size: 0") and "#" in line for line in lines)
    assert any(line.startswith("postprocess: ") and line.endswith("(default: watershed)") for line in lines)
    assert any(line.startswith("experiment: ") and "isbi2012_cpu" in line for line in lines)
    assert not any(line.startswith(("hydra:", "paths:", "task_name:")) for line in lines)
