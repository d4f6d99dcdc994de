"""The CLI wrapper: user errors folded into one line naming the cause."""

from hydra.errors import InstantiationException

from src.utils.cli import is_user_error, one_line, suggest_keys
from src.utils.errors import UserError


def test_a_multi_line_config_error_becomes_one_line_without_hydras_noise():
    error = UserError(
        "Key 'dept' not in 'UNetSchema'\n    full_key: model.dept\n    object_type=UNetSchema\n"
        "Key 'dept' not in 'UNetSchema'"
    )
    assert one_line(error) == "Key 'dept' not in 'UNetSchema'"


def test_a_rejected_target_names_its_reason_and_the_target():
    try:
        try:
            raise UserError("data.crop_size=0 must be positive")
        except UserError as cause:
            raise InstantiationException("Error in call to target 'src.data.datamodule.EMDataModule':") from cause
    except InstantiationException as error:
        assert is_user_error(error)
        assert one_line(error) == "data.crop_size=0 must be positive (while building src.data.datamodule.EMDataModule)"


def test_a_misspelt_key_gets_the_closest_keys_of_its_schema_instead_of_the_append_hint():
    message = (
        "Could not override 'model.dept'. To append to your config use +model.dept=5 Key 'dept' not in 'UNetSchema'"
    )
    assert suggest_keys(message) == (
        "Could not override 'model.dept'. Key 'dept' not in 'UNetSchema' (did you mean model.depth?)"
    )
    far = "Could not override 'zzz'. To append to your config use +zzz=1 Key 'zzz' not in 'TrainSchema'"
    assert suggest_keys(far) == "Could not override 'zzz'. Key 'zzz' not in 'TrainSchema'"
    assert suggest_keys("data.crop_size=0 must be positive") == "data.crop_size=0 must be positive"


def test_running_out_of_memory_is_one_line_that_says_what_to_ask_less_of():
    import torch

    host = MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000) and data type float64")
    device = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 1.2 GiB free.")
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 80000000000 bytes. Error code 12 (Cannot allocate memory)"
    )  # what torch 2.13's CPU allocator raises
    import cv2

    opencv = cv2.error(
        "OpenCV(5.1.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 40000000000 bytes in "
        "function 'OutOfMemoryError'"
    )  # albumentations padding a crop of 100000 pixels
    for error, reason in (
        (opencv, "OpenCV(5.1.0) alloc.cpp:73"),
        (host, "Unable to allocate 74.5 GiB"),
        (cpu, "[enforce fail at alloc_cpu.cpp:127]"),
        (device, "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has"),
    ):
        assert is_user_error(error)
        assert one_line(error).startswith(f"out of memory ({reason}") and "\n" not in one_line(error)
        assert "a smaller tile_size, batch_size, crop_size or block_shape" in one_line(error)
    assert not is_user_error(RuntimeError("a bug")) and one_line(MemoryError()).startswith(
        "out of memory (MemoryError)"
    )
