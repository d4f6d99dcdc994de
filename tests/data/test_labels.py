"""Label stacks: binary labels become the interior mask; anything else is one clear error."""

import numpy as np
import pytest

from src.data.labels import binary_labels
from src.utils.errors import UserError


def test_labels_must_be_binary():
    assert binary_labels(np.array([[0, 255]], np.uint8)).tolist() == [[0, 1]]
    with pytest.raises(UserError, match="not binary"):
        binary_labels(np.array([[0, 1, 2]], np.uint8))
