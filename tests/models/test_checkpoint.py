import os

import pytest
from omegaconf import OmegaConf

from src.models.checkpoint import find_last_checkpoint, resume_path
from src.utils.errors import UserError
from tests.conftest import small_module


def _last(run, mtime: int):
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_last_is_the_newest_last_ckpt_of_earlier_runs_and_jobs(tmp_path):
    task = tmp_path / "train"
    _last(task / "runs" / "2026-01-01_00-00-00", 100)
    newest = _last(task / "multiruns" / "2026-01-01_00-00-01" / "3", 300)
    current = task / "runs" / "2026-01-02_00-00-00"
    _last(current, 400)  # the run being started is never its own resume point
    assert find_last_checkpoint(task, current) == newest


def test_last_without_an_earlier_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "runs" / "old").mkdir(parents=True)
    with pytest.raises(UserError, match="ckpt_path=last: no earlier run under .* has checkpoints/last.ckpt"):
        find_last_checkpoint(tmp_path / "train", tmp_path / "train" / "runs" / "now")


def test_last_means_the_newest_last_ckpt_of_earlier_runs(tmp_path):
    cfg = OmegaConf.create({"ckpt_path": "last", "task_name": "train", "paths": {"log_dir": str(tmp_path)}})
    cfg.paths.output_dir = str(tmp_path / "train" / "runs" / "now")
    with pytest.raises(UserError, match="no earlier run"):
        resume_path(cfg)
    earlier = tmp_path / "train" / "runs" / "before" / "checkpoints" / "last.ckpt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"")
    assert resume_path(cfg) == str(earlier)
    assert resume_path(OmegaConf.create({"ckpt_path": None})) is None


def _module(num_classes: int = 2, depth: int = 3, classes=None):
    import torch

    from src.models.module import SegmentationModule

    torch.manual_seed(num_classes + depth)
    return SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": depth, "base_channels": 4, "num_classes": num_classes},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        classes=classes,
    )


def test_init_from_loads_the_network_and_re_initialises_a_final_layer_of_another_class_count(tmp_path, caplog):
    import logging

    import torch

    from src.models.checkpoint import load_weights
    from tests.conftest import write_small_checkpoint

    path = write_small_checkpoint(tmp_path / "isbi.ckpt", depth=3, padding="same")
    saved = torch.load(path, weights_only=True)["state_dict"]
    five = _module(5, classes=["membrane", "glia", "mitochondria", "synapse", "interior"])
    five.hparams.net["padding"] = "same"  # as the checkpoint's network
    fresh_outc = five.net.outc.weight.clone()
    with caplog.at_level(logging.INFO, logger="src.models.checkpoint"):
        load_weights(five, path)
    assert torch.equal(five.net.inc[0].weight, saved["net.inc.0.weight"])  # the body comes from the checkpoint
    assert torch.equal(five.net.outc.weight, fresh_outc)  # the 5-class head stays newly initialised
    assert any("final layer was re-initialised (2 classes there, 5 here)" in r.getMessage() for r in caplog.records)


def test_init_from_refuses_a_network_of_another_shape_naming_both(tmp_path):
    from src.models.checkpoint import load_weights
    from tests.conftest import write_small_checkpoint

    path = write_small_checkpoint(tmp_path / "deep.ckpt", depth=3)
    with pytest.raises(UserError, match=r"holds a network with depth=3.* but this run's has depth=2"):
        load_weights(_module(2, depth=2), path)


@pytest.mark.parametrize(
    "contents",
    [{"state_dict": {}}, {"hyper_parameters": {"net": {"depth": 2}}}, {"hyper_parameters": None, "state_dict": {}}],
    ids=["no network config", "no weights", "empty hyperparameters"],
)
def test_every_reader_refuses_a_file_src_train_did_not_write_naming_it(tmp_path, contents):
    """Reading to predict, resuming and ``model.init_from`` share one check, each naming the file as it was given."""
    import torch

    from src.models.checkpoint import check_resumable, read_checkpoint, read_init_from

    path = tmp_path / "foreign.ckpt"
    torch.save(contents, path)
    net = {"_target_": "src.models.unet.build_unet", "depth": 2}
    for read, name in [
        (lambda: read_checkpoint(path), f"checkpoint {path}"),
        (lambda: check_resumable(path, net), f"checkpoint {path}"),
        (lambda: read_init_from(path, net), f"model.init_from={path}"),
    ]:
        with pytest.raises(UserError) as refused:
            read()
        assert str(refused.value) == f"{name} was not written by src.train (no network config or weights in it)"


def test_a_bad_checkpoint_is_refused_before_lightning_is_imported(tmp_path):
    """src.eval and src.predict read the file first: a missing one without torch, a foreign one without Lightning."""
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
from src.models.checkpoint import read_checkpoint
from src.utils.errors import UserError
seen = []
try:
    read_checkpoint(Path({str(tmp_path)!r}) / "gone.ckpt")
except UserError as exc:
    seen.append(("torch" in sys.modules, str(exc)))
import torch
torch.save({{"state_dict": {{}}}}, Path({str(tmp_path)!r}) / "foreign.ckpt")
try:
    read_checkpoint(Path({str(tmp_path)!r}) / "foreign.ckpt")
except UserError as exc:
    seen.append(("lightning" in sys.modules, str(exc)))
print(seen)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    (missing_imported_torch, missing), (foreign_imported_lightning, foreign) = eval(out.stdout.strip().splitlines()[-1])
    assert not missing_imported_torch and missing.startswith("checkpoint not found:") and "gone.ckpt" in missing
    assert not foreign_imported_lightning and "was not written by src.train" in foreign


@pytest.mark.parametrize("members, classes, affinities", [(1, None, None), (2, ["a", "b", "c"], [[-1, 0], [0, -9]])])
def test_a_checkpoints_outputs_are_named_from_its_hyperparameters_as_the_module_names_them(
    members, classes, affinities
):
    from src.models.checkpoint import saved_outputs

    module = small_module(members, classes, affinities)
    assert saved_outputs(dict(module.hparams)) == (module.classes, module.boundary_class, module.offsets)
    assert module.classes == (classes or ["membrane", "interior"]) and len(module.offsets) == len(affinities or [])
