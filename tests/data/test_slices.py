"""Slice selections from config values."""

import pytest

from src.data.slices import parse_slices
from src.utils.errors import UserError


def test_slice_specs():
    assert parse_slices(None, 3, "s") == [0, 1, 2]
    assert parse_slices("1:3", 5, "s") == [1, 2] and parse_slices("::2", 5, "s") == [0, 2, 4]
    assert parse_slices([4, -1], 5, "s") == [4, 4] and parse_slices(2, 5, "s") == [2]
    with pytest.raises(UserError):
        parse_slices("3:3", 5, "s")
