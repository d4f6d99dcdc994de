"""Loading a trained SegmentationModule from a checkpoint file, with clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import torch

from src.models.module import SegmentationModule
from src.utils.errors import UserError


def load_module(ckpt_path: str | Path, map_location: str = "cpu") -> SegmentationModule:
    """The module saved in ``ckpt_path`` (loaded with ``weights_only=True``: no code runs from the file)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path} (give ckpt_path=<run dir>/checkpoints/<name>.ckpt)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise UserError(
            f"checkpoint {path} could not be read ({type(exc).__name__}); is it a complete .ckpt?"
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not hparams or "net" not in hparams or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} was not written by src.train (no network config or weights in it)")
    hparams = {key: value for key, value in hparams.items() if key != "class_weights"}  # pre-`loss` checkpoints
    module = SegmentationModule(**hparams)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise UserError(
            f"checkpoint {path} does not match its own network config: {str(exc).splitlines()[0]}"
        ) from None
    return module.eval()
