"""Per-slice standardisation."""

import numpy as np
import pytest

from src.data.normalize import normalize_slices
from src.utils.errors import UserError


def test_normalisation_is_per_slice_and_bit_depth_independent():
    stack8 = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype(np.uint8)
    a = normalize_slices(stack8)
    b = normalize_slices(stack8.astype(np.uint16) * 257)
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(a.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(a.std(axis=(1, 2)), 1, atol=1e-4)
    with pytest.raises(UserError, match="NaN or infinite"):
        normalize_slices(np.array([[[np.nan, 1.0]]]))
