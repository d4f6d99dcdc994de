"""What the machine offers, read from the CPU's flags, and the one precision resolver."""

import os

import pytest
import torch

from src.config import hardware
from src.utils.errors import UserError
from tests.conftest import compose_config


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bf16-mixed"), (False, "32")])
def test_precision_defaults_to_bf16_only_where_the_cpu_has_it(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    assert hardware.default_precision() == expected
    assert compose_config("train", ["trainer.accelerator=cpu"]).trainer.precision == expected


def test_cpu_bf16_support_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    for flags, expected in (
        ("fpu avx2 avx512f", False),
        ("fpu avx512f avx512_bf16", True),
        ("amx_bf16 amx_tile", True),
    ):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
        assert hardware.cpu_has_native_bf16() is expected


def test_cpu_description_names_the_model_cores_and_bf16(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512_bf16\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    assert hardware.cpu_description() == f"AMD EPYC 9R14, {os.cpu_count()} cores, native bf16: yes"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu avx2\n")
    assert hardware.cpu_description() == f"Old CPU, {os.cpu_count()} cores, native bf16: no"


def test_precision_names_are_lightnings_and_16_bit_needs_a_gpu():
    cpu = torch.device("cpu")
    assert hardware.autocast_dtype("32", cpu) is None
    assert hardware.autocast_dtype("bf16-mixed", cpu) is torch.bfloat16
    assert hardware.check_precision("16-mixed", on_cpu=False) == "16-mixed"
    with pytest.raises(UserError, match="precision=16-mixed needs a GPU"):
        hardware.autocast_dtype("16-mixed", cpu)
    with pytest.raises(UserError, match="precision=bf16 is not one of 32, bf16-mixed, 16-mixed"):
        hardware.autocast_dtype("bf16", cpu)


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    assert hardware.autocast_dtype("auto", torch.device("cpu")) is expected


def test_devices_are_checked():
    assert hardware.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="not a device"):
        hardware.resolve_device("tpu:x")
    if not torch.cuda.is_available():
        assert hardware.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(UserError, match="no CUDA GPU is visible"):
            hardware.resolve_device("cuda")
        assert hardware.default_workers() == 0 and hardware.runs_on_cpu("auto")
