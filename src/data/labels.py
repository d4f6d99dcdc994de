"""Label stacks as the networks' targets: the interior mask of binary membrane labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.utils.errors import UserError


def binary_labels(stack: np.ndarray, path: str | Path = "label stack") -> np.ndarray:
    """Interior mask (1 = cell interior, 0 = membrane) from labels holding two values {0, 1} or {0, 255}."""
    values = np.unique(stack)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise UserError(
            f"labels in {path} are not binary (values: {shown}); expected 0 = membrane and 255 (or 1) = cell "
            "interior; threshold grey labels (e.g. from lossy saving) before use"
        )
    return (stack > 0).astype(np.uint8)
