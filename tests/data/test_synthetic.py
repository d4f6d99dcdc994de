import numpy as np

from src.data.synthetic import synthetic_stack


def test_deterministic_by_seed_and_em_like():
    a_img, a_lab = synthetic_stack(num_slices=3, size=64, num_cells=10, seed=5)
    b_img, b_lab = synthetic_stack(num_slices=3, size=64, num_cells=10, seed=5)
    c_img, _ = synthetic_stack(num_slices=3, size=64, num_cells=10, seed=6)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert a_img.dtype == np.uint8 and a_img.shape == (3, 64, 64)
    assert set(np.unique(a_lab)) == {0, 255}
    # Membranes are darker than cell interiors, as in EM.
    assert a_img[a_lab == 255].mean() - a_img[a_lab == 0].mean() > 40
    membrane_fraction = (a_lab == 0).mean()
    assert 0.05 < membrane_fraction < 0.5
