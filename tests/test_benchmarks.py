"""The benchmark scripts' summaries (not their timings: tests never assert speed)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from benchmarks.ablation import table
from benchmarks.affinities import decoded_now
from benchmarks.classifier_draws import draws_table
from benchmarks.plain_step import PlainStep
from benchmarks.predict_vs_monai import convolution_seconds
from benchmarks.step_timer import PHASES, StepTimer
from benchmarks.train_throughput import interleaved_ratios, pair_ratios, precisions
from src.config.hardware import cpu_has_native_bf16
from src.models.module import SegmentationModule

NET = {"_target_": "src.models.unet.UNetEnsemble", "members": 2, "depth": 2, "base_channels": 4, "padding": "same"}
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}


def _run(batch: int, seconds_a_step: list[float]) -> dict:
    return {"batch_size": batch, "intervals": seconds_a_step}


def test_pair_ratios_compare_each_framework_run_with_the_plain_run_beside_it():
    plains = [_run(4, [0.40, 0.40, 0.50]), _run(4, [0.20, 0.20]), _run(4, [0.30])]
    frameworks = [_run(4, [0.50]), _run(4, [0.20, 0.30, 0.20]), _run(4, [0.20, 0.20])]
    # ratios framework / plain of the pairs: 0.4/0.5 = 0.8, 0.2/0.2 = 1.0, 0.3/0.2 = 1.5 (their mean is 1.1)
    summary = pair_ratios(plains, frameworks)
    assert summary["ratio"] == 1.0
    assert abs(summary["ratio_low"] - 0.8) < 1e-12 and abs(summary["ratio_high"] - 1.5) < 1e-12


def test_interleaved_ratios_compare_the_two_loops_median_steps_and_give_each_parts_median():
    real = [0.30, 0.20, 0.25, 0.40, 0.22]  # median 0.25
    plain = [0.20, 0.20, 0.20, 0.30, 0.10]  # median 0.20
    phases = {
        "src.train": {name: [0.01 * (i + 1)] * 5 for i, name in enumerate(PHASES)},
        "plain": {name: [0.0, 0.1, 0.2, 0.3, 0.4] for name in PHASES},
    }
    summary = interleaved_ratios({"intervals": real, "plain_intervals": plain, "phases": phases})
    assert abs(summary["interleaved"] - 0.8) < 1e-12  # 0.20 / 0.25, not the median of the steps' own ratios
    # the steps' own ratios: 0.667, 1.0, 0.8, 0.75, 0.455 (median 0.75); their quartiles (inclusive) 0.667 and 0.8
    assert abs(summary["interleaved_low"] - 2 / 3) < 1e-12 and abs(summary["interleaved_high"] - 0.8) < 1e-12
    assert summary["phases"]["src.train"]["backward"] == 0.03 and summary["phases"]["src.train"]["step"] == 0.25
    assert summary["phases"]["plain"]["optimizer"] == 0.2 and summary["phases"]["plain"]["step"] == 0.2
    # the whole run: mean plain step 0.20 over mean real step 0.274 (the slow steps count in full)
    assert abs(summary["whole_run"] - 0.20 / 0.274) < 1e-12 and summary["whole_run_steps"] == 5


def test_plain_step_trains_the_modules_network_on_its_batch_and_marks_its_parts():
    torch.manual_seed(0)
    module = SegmentationModule(net=NET, optimizer=SGD)
    plain = PlainStep(module, instantiate(SGD), batch_size=2, crop_size=16, bf16=False)
    before = [p.detach().clone() for p in module.net.parameters()]
    plain.step()
    assert plain.label.shape == (4, 16, 16)  # the two members' logits: the labels repeated to match
    assert all(not torch.equal(a, b) for a, b in zip(before, module.net.parameters(), strict=True))
    start, backward, optimizer, end = plain.marks
    assert start <= backward <= optimizer <= end


def _drive(timer: StepTimer, module: SegmentationModule, steps: int) -> dict:
    """Call the timer's hooks as Lightning's training loop does, once per batch."""
    trainer = SimpleNamespace(datamodule=SimpleNamespace(batch_size=2, crop_size=16), precision="32-true")
    timer.on_train_start(trainer, module)
    batch = {"image": torch.zeros(2, 1, 16, 16)}
    for index in range(steps):
        timer.on_train_batch_start(trainer, module, batch, index)
        timer.on_before_backward(trainer, module, None)
        timer.on_after_backward(trainer, module)
        timer.on_train_batch_end(trainer, module, None, batch, index)
    timer.on_train_end(trainer, module)
    return json.loads(timer.output.read_text())


@pytest.mark.parametrize("interleave", [False, True])
def test_step_timer_splits_each_real_step_into_parts_and_leaves_the_plain_step_out(tmp_path, interleave):
    module = SegmentationModule(net=NET, optimizer=SGD)
    timer = StepTimer(str(tmp_path / "timing.json"), warmup=2, interleave=interleave)
    result = _drive(timer, module, steps=6)
    assert len(result["intervals"]) == 3 and result["batch_size"] == 2  # 6 batches, 2 warm-up, 3 intervals
    real = result["phases"]["src.train"]
    for k, interval in enumerate(result["intervals"]):
        assert abs(sum(real[name][k] for name in PHASES) - interval) < 1e-9  # the parts make up the interval
    if not interleave:
        assert "plain_intervals" not in result and "plain" not in result["phases"]
        return
    plain = result["phases"]["plain"]
    assert len(result["plain_intervals"]) == 3
    for k, interval in enumerate(result["plain_intervals"]):
        assert plain["data and loop"][k] == 0.0 and abs(sum(plain[n][k] for n in PHASES) - interval) < 1e-9
    # A real step's interval starts where the plain step after the one before it ended: never overlaps it.
    ends = [m["end"] for m in timer.marks]
    for k, interval in zip(range(3, 6), result["intervals"], strict=True):
        assert abs(interval - (ends[k] - timer.plain_marks[k - 1][-1])) < 1e-12
        assert timer.plain_marks[k - 1][0] >= ends[k - 1]


def test_precisions_auto_adds_bf16_only_where_it_is_native():
    native = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_has_native_bf16()
    expected = ["32", "bf16-mixed"] if native else ["32"]
    assert precisions("auto") == expected
    assert precisions("bf16-mixed,32") == ["bf16-mixed", "32"]


def _row(variant: str, seed: int, machine: str, vrand: float, steps: int) -> dict:
    scores = dict.fromkeys(("vinfo", "components_vrand", "components_vinfo", "watershed_vrand", "watershed_vinfo"), 0.9)
    return {"variant": variant, "seed": seed, "machine": machine, "vrand": vrand, "steps": steps, **scores}


def test_ablation_table_keeps_each_machines_runs_apart():
    rows = [
        _row("time_budget", 1, "old CPU", 0.984, 1500),
        _row("time_budget", 2, "old CPU", 0.982, 1500),
        _row("time_budget", 1, "new CPU", 0.975, 4400),
        _row("full", 1, "new CPU", 0.980, 2700),
    ]
    empty, old, new = table(rows).split("### ")
    assert empty == "" and old.startswith("old CPU") and new.startswith("new CPU")
    # the old machine's two seeds are averaged together, never with the new machine's run of the same variant
    assert "| time_budget |" in old and "| 1500 | 0.9830 ± 0.0014 |" in old and "| full |" not in old
    assert "| 4400 | 0.9750 |" in new and "| 2700 | 0.9800 |" in new


def test_convolution_seconds_counts_only_the_networks_convolutions_and_removes_its_hooks():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 1, 2, stride=2))
    calls = []
    net[0].register_forward_hook(lambda module, inputs, output: calls.append(output.shape))
    x = torch.randn(1, 1, 16, 16)
    total, inside = convolution_seconds(net, lambda: net(x), torch.device("cpu"))
    assert 0 < inside <= total
    assert calls == [torch.Size([1, 4, 14, 14])]  # the user's own hook still runs, once
    assert convolution_seconds(net, lambda: x.sum(), torch.device("cpu"))[1] == 0.0  # no convolution ran
    # Only the user's hook is left behind.
    assert len(net[0]._forward_hooks) == 1 and not net[0]._forward_pre_hooks and not net[2]._forward_hooks


def test_the_volume_benchmark_tiles_isbi_slices_into_a_zarr_volume(tmp_path, isbi_stack):
    import zarr

    from benchmarks.blockwise_volume import make_volume

    make_volume(tmp_path / "v.zarr", 3, 600)
    volume = zarr.open_array(tmp_path / "v.zarr", mode="r")
    assert volume.shape == (3, 600, 600) and volume.chunks == (1, 1024, 1024)
    images = isbi_stack[0]
    np.testing.assert_array_equal(volume[1, :512, :512], images[1])  # slice z, tile (i, j): ISBI slice z + i + j
    np.testing.assert_array_equal(volume[2, 512:, :512], images[3][:88])
    make_volume(tmp_path / "l.zarr", 3, 600, labels=True)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "l.zarr", mode="r")[2, 512:, :512], isbi_stack[1][3][:88])


def test_an_affinity_row_is_current_only_for_the_settings_it_was_decoded_with():
    row = {"decoder": {"attractive": 2, "fragments_h": 0.05, "stride": 2, "min_size": 100}}
    settings = {**row["decoder"], "rounds": [], "classifiers": 1}
    assert decoded_now(row, settings)  # settings newer than the row, at the values that decode as the row was
    assert not decoded_now(row, {**settings, "rounds": [0.9]})
    assert not decoded_now(row, {**settings, "classifiers": 8})
    assert not decoded_now(row, {**settings, "stride": 8})


def test_the_draws_table_gives_each_classifier_and_the_spread_of_the_single_draws():
    scores = {
        "random state 0": (0.98, 0.99, [0.97, 0.99]),
        "random state 1": (0.96, 0.97, [0.95, 0.97]),
        "8 averaged (`postprocess.classifiers=8`)": (0.90, 0.91, [0.89, 0.91]),  # not one of the draws
    }
    lines = draws_table(scores).splitlines()
    assert "| random state 1 | 0.9600 | 0.9700 | 0.950 0.970 |" in lines
    assert lines[-1] == "| random states: mean (min-max) | 0.9700 (0.9600-0.9800) | 0.9800 | |"
