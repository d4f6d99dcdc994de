"""The README is a front page whose figures come from real runs, and every ``python -m src.<task>`` command it
shows composes: its task exists and each override names a real key, option or value of the right type (what a
new user copying it would hit first). What the commands then do is covered by the CLI tests (tests/cli/)."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from benchmarks import affinities, vnc2013
from benchmarks.headline import RESULTS as HEADLINE_RESULTS
from benchmarks.headline import replace_block, table
from src.config import PROJECT_ROOT
from src.config.help import task_help
from tests.conftest import compose_config

TASKS = {"train", "eval", "predict", "export", "score"}
# The README's example of a misspelt key, shown with the error it gives.
MISSPELT = "python -m src.train model.dept=5"
# Placeholders the README writes in angle brackets, replaced by plausible values.
PLACEHOLDERS = {
    "<time>": "2026-01-01_00-00-00",
    "<best>": "best",
    "<p>": "gpu",
    "$RUN": "logs/train/runs/2026-01-01_00-00-00",
}


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    commands = []
    for snippet in re.findall(r"`(python -m src\.(?:train|eval|predict|export|score)\b[^`]*)`", text):
        for placeholder, value in PLACEHOLDERS.items():
            snippet = snippet.replace(placeholder, value)
        commands.append(snippet)
    return sorted(set(commands))


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's overrides with every sweep (``a=1,2``) replaced by its first value: one job of the sweep."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    single = []
    for override in parsed:
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            single.append(f"{override.get_key_element()}={first}")
        else:
            single.append(override.input_line)
    return single


def test_the_readme_shows_commands_of_every_task():
    tasks = {command.split()[2].removeprefix("src.") for command in readme_commands()}
    assert tasks == TASKS


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_composes(command):
    words = shlex.split(command)
    task = words[2].removeprefix("src.")
    assert task in TASKS, f"README names an unknown task: {command}"
    overrides = [w for w in words[3:] if w not in ("-m", "--multirun")]
    if overrides[-2:] == ["--cfg", "job"]:
        overrides = overrides[:-2]
    if overrides == ["--help"]:
        assert task_help(task).startswith(f"python -m src.{task}: ")
        return
    if command == MISSPELT:
        with pytest.raises(Exception, match="Could not override 'model.dept'"):
            compose_config(task, overrides)
        return
    cfg = compose_config(task, first_of_each_sweep(overrides))
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if (PROJECT_ROOT / "conf" / key).is_dir() or override.is_sweep_override() or key.startswith("hydra"):
            continue  # a config group's option, a sweep (its first job composed above), or Hydra's own settings
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        assert str(value) == str(override.value()), f"{command}: {key} composed to {value!r}"


def test_the_readme_is_a_front_page():
    assert len((PROJECT_ROOT / "README.md").read_bytes()) <= 10_000, "measurements and details belong in docs/"


def test_every_link_of_the_readme_exists():
    text = (PROJECT_ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|benchmarks|scripts)/[^)#]+)\)", text)
    assert links and all((PROJECT_ROOT / link).exists() for link in links), links


def test_the_headline_table_is_the_one_the_script_wrote_from_real_runs():
    rows = json.loads(HEADLINE_RESULTS.read_text())
    assert len({row["seed"] for row in rows}) >= 3, "several seeds"
    text = (PROJECT_ROOT / "README.md").read_text()
    assert replace_block(text, table(rows)) == text, "rerun python benchmarks/headline.py"


def test_the_vnc2013_tables_are_the_ones_the_script_wrote_from_real_runs():
    rows = json.loads(vnc2013.RESULTS.read_text())
    scratch = [row for row in rows if row["start"] == "from scratch"]
    assert len({row["seed"] for row in scratch}) >= 3, "several seeds"
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert vnc2013.replace_block(readme, vnc2013.class_table(scratch, iou=False)) == readme, (
        "rerun benchmarks/vnc2013.py"
    )
    page = vnc2013.PAGE.read_text()
    assert vnc2013.replace_block(page, vnc2013.page_block(rows)) == page, "rerun python benchmarks/vnc2013.py"


def test_the_affinity_tables_are_the_ones_the_script_wrote_from_real_runs():
    rows = json.loads(affinities.RESULTS.read_text())
    assert {row["experiment"] for row in rows} == set(affinities.RECIPES), "both recipes, side by side"
    _, settings = affinities.recipe_decoder()
    decoded = [r for r in rows if r["experiment"] == "isbi2012_cpu_affinities"]
    stale = [r["run"] for r in decoded if not affinities.decoded_now(r, settings)]
    assert not stale, "decoded by other settings than the recipe's: rerun python benchmarks/affinities.py --rescore"
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = (affinities.summary(rows), affinities.START, affinities.END)
    assert affinities.replace_block(readme, *block) == readme, "rerun python benchmarks/affinities.py"
    page = affinities.PAGE.read_text()
    block = (affinities.table(rows), affinities.START, affinities.END)
    assert affinities.replace_block(page, *block) == page, "rerun python benchmarks/affinities.py"
