"""Per-slice standardisation."""

import numpy as np
import pytest

from src.data.normalize import check_finite, normalize_slices
from src.utils.errors import UserError


def test_normalisation_is_per_slice_and_bit_depth_independent():
    stack8 = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype(np.uint8)
    a = normalize_slices(stack8)
    b = normalize_slices(stack8.astype(np.uint16) * 257)
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(a.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(a.std(axis=(1, 2)), 1, atol=1e-4)
    with pytest.raises(UserError, match="NaN or infinite"):
        normalize_slices(np.array([[[np.nan, 1.0]]]))


def test_check_finite_refuses_what_float32_cannot_hold_and_passes_integers():
    check_finite(np.full((2, 4, 4), 255, np.uint8))
    check_finite(np.full((2, 4, 4), 1e30, np.float64))
    with pytest.raises(UserError, match="2 NaN or infinite"):
        check_finite(np.array([[[1e300, -1e300, 0.0]]]))
