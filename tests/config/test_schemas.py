"""One source per default: a value is written in the YAML or in a schema, never in both, and the Python
defaults of our own config targets agree with their YAML."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf

from src.config import PROJECT_ROOT, schemas

CONF = PROJECT_ROOT / "conf"
# Each schema and the YAML files (and the node in them) whose keys it types.
TYPED = [
    (schemas.TrainSchema, ["train.yaml"], None),
    (schemas.EvalSchema, ["eval.yaml"], None),
    (schemas.ScoreSchema, ["score.yaml"], None),
    (schemas.PredictSchema, ["predict.yaml"], None),
    (schemas.ExportSchema, ["export.yaml"], None),
    (schemas.UNetSchema, ["model/*.yaml"], None),
    (schemas.DataSchema, ["data/*.yaml"], None),
    (schemas.AugmentationSchema, ["data/augmentation/*.yaml"], None),
    (schemas.TrainerSchema, ["trainer/*.yaml"], None),
    (schemas.WeightMapSchema, ["loss/*.yaml"], "data.weight_map"),
]


def _files(patterns: list[str]) -> list[Path]:
    return sorted(path for pattern in patterns for path in CONF.glob(pattern))


def _set_keys(path: Path, node: str | None) -> set[str]:
    cfg = OmegaConf.load(path)
    if node is not None:
        cfg = OmegaConf.select(cfg, node)
    if not isinstance(cfg, DictConfig):
        return set()
    return {key for key in cfg if key not in ("defaults", "hydra")}


def _defaults(schema) -> dict[str, object]:
    """The fields of ``schema`` that carry a default of their own (not MISSING, not a nested schema)."""
    values = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING and f.default != MISSING:
            values[f.name] = f.default
    return values


@pytest.mark.parametrize(("schema", "patterns", "node"), TYPED, ids=[t[0].__name__ for t in TYPED])
def test_no_key_has_a_default_in_both_schema_and_yaml(schema, patterns, node):
    files = _files(patterns)
    assert files, f"no YAML file matches {patterns}"
    defaults = _defaults(schema)
    twice = {f"{path.relative_to(CONF)}: {key}" for path in files for key in _set_keys(path, node) & set(defaults)}
    assert not twice, f"{schema.__name__} and the YAML both give a default for {sorted(twice)}"


def test_every_yaml_key_of_a_schema_is_typed():
    for schema, patterns, node in TYPED:
        fields = {f.name for f in dataclasses.fields(schema)}
        for path in _files(patterns):
            unknown = _set_keys(path, node) - fields
            assert not unknown, f"{path.relative_to(CONF)} sets {sorted(unknown)}, which {schema.__name__} lacks"


def _targets(node, where: str):
    """Every node with a ``_target_`` of our own code in a loaded YAML tree, with its path for messages."""
    if isinstance(node, DictConfig):
        target = node.get("_target_") if "_target_" in node else None
        if isinstance(target, str) and target.startswith("src."):
            yield where, node
        for key in node:
            if key != "defaults":
                yield from _targets(node._get_node(key), f"{where}.{key}")


def _yaml_targets():
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        if "experiment" in path.parts or "debug" in path.parts:
            continue  # recipes override defaults on purpose
        for where, node in _targets(OmegaConf.load(path), str(path.relative_to(CONF))):
            found.append(pytest.param(node, id=where))
    return found


@pytest.mark.parametrize("node", _yaml_targets())
def test_python_defaults_of_config_targets_agree_with_the_yaml(node):
    signature = inspect.signature(get_object(node._target_))
    disagree = []
    for key in node:
        parameter = signature.parameters.get(key)
        if key.startswith("_") or parameter is None or parameter.default in (inspect.Parameter.empty, None):
            continue  # None: an optional argument left out, not a default value
        raw = node._get_node(key)
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key) or isinstance(raw, DictConfig):
            continue
        value = OmegaConf.to_container(raw) if OmegaConf.is_config(raw) else raw._value()
        if value != parameter.default:
            disagree.append(f"{key}: YAML {value!r}, Python {parameter.default!r}")
    assert not disagree, f"{node._target_}: {disagree}"
