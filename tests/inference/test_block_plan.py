"""The plan of a blockwise prediction: its blocks, halo and settings, and what it refuses before Lightning."""

import numpy as np
import pytest
import tifffile

from src.inference.block_plan import plan_blocks, run_settings
from src.inference.blockwise import network_reach
from src.utils.errors import UserError
from tests.conftest import compose_config, small_module

RECIPE = {"tta": [0, 5], "postprocess": {"_target_": "src.postprocess.instances.SeededWatershed"}}


@pytest.fixture(scope="module")
def module():
    return small_module()


def _config(tmp_path, *extra: str):
    if not (tmp_path / "in.tif").exists():
        tifffile.imwrite(tmp_path / "in.tif", np.zeros((3, 100, 130), np.uint8))
    paths = [f"ckpt_path={tmp_path / 'm.ckpt'}", f"input={tmp_path / 'in.tif'}", f"output={tmp_path / 'out.zarr'}"]
    return compose_config("predict", [*paths, "block_shape=[2,64,64]", *extra])


def _interrupt(plan) -> None:
    """Leave the plan's partial output as a killed run leaves it."""
    plan.output.create(**{**plan.create, "settings": {**plan.create["settings"], "slice_statistics": []}})


def test_the_plan_cuts_the_volume_into_blocks_and_records_its_settings(module, tmp_path):
    cfg = _config(tmp_path)
    plan = plan_blocks(cfg, module, RECIPE, method=object())
    assert [(b.z, b.y, b.x) for b in plan.blocks[:3]] == [((0, 2), (0, 64), (0, 64)), ((0, 2), (0, 64), (64, 128)),
                                                          ((0, 2), (0, 64), (128, 130))]  # fmt: skip
    assert len(plan.blocks) == 2 * 2 * 3 and plan.create["shape"] == (3, 100, 130)
    halo = network_reach(module.net)
    assert plan.create["settings"] == run_settings(cfg, RECIPE, (3, 100, 130), [2, 64, 64], halo)
    assert plan.create["settings"]["halo"] == halo > 0 and plan.create["settings"]["tta"] == [0, 5]
    assert plan.cells[1] == cfg.cells_halo and not (tmp_path / ".out.partial.zarr").exists()  # nothing written


def test_an_interrupted_output_is_resumed_only_when_asked_and_with_the_same_settings(module, tmp_path):
    _interrupt(plan_blocks(_config(tmp_path), module, RECIPE))
    with pytest.raises(UserError, match="holds an interrupted prediction; pass resume=true"):
        plan_blocks(_config(tmp_path), module, RECIPE)
    with pytest.raises(UserError, match=r"other settings \(block_shape, tta differ\)"):
        plan_blocks(_config(tmp_path, "resume=true", "block_shape=[1,64,64]"), module, {**RECIPE, "tta": [0]})
    resumed = plan_blocks(_config(tmp_path, "resume=true"), module, RECIPE)  # the same command: finished there
    assert resumed.output.check_resumable(True, resumed.create["settings"])


def test_cells_that_cannot_be_stitched_are_refused_and_no_cells_need_no_halo(module, tmp_path):
    with pytest.raises(UserError, match="cells_halo=0 must be at least 1"):
        plan_blocks(_config(tmp_path, "cells_halo=0"), module, RECIPE, method=object())
    assert plan_blocks(_config(tmp_path, "cells_halo=0"), module, RECIPE).cells is None
