"""Every ``python -m src.<task>`` command the README shows composes: its task exists and each override names a
real key, option or value of the right type (what a new user copying it would hit first). What the commands
then do is covered by the task tests (tests/test_train_cli.py, test_eval_cli.py, test_predict_cli.py, ...)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from src.utils.config import PROJECT_ROOT
from tests.conftest import compose_config

TASKS = {"train", "eval", "predict", "export", "score"}
# The README's example of a misspelt key, shown with the error it gives.
MISSPELT = "python -m src.train model.dept=5"
# Placeholders the README writes in angle brackets, replaced by plausible values.
PLACEHOLDERS = {"<time>": "2026-01-01_00-00-00", "<best>": "best", "<p>": "gpu"}


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
