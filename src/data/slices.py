"""Choosing slices of a stack from a config value: all, one, a list, or a ``start:stop[:step]`` range."""

from __future__ import annotations

from typing import Any

from src.utils.errors import UserError


def parse_slices(spec: Any, count: int, what: str) -> list[int]:
    """Slice indices from ``None`` (all), an int, a list of ints, or a ``"start:stop[:step]"`` string."""
    if spec is None:
        return list(range(count))
    if isinstance(spec, str):
        try:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
            if len(parts) > 3 or (len(parts) == 1 and parts[0] is None):
                raise ValueError
        except ValueError:
            raise UserError(f"{what}={spec!r} is not a slice range; write start:stop (e.g. 24:30) or a list") from None
        if len(parts) == 1:
            indices = [parts[0]]
        else:
            if any(p is not None and not -count <= p <= count for p in parts[:2]):
                raise UserError(f"{what}={spec!r} reaches past the stack's {count} slices (0 to {count - 1})")
            indices = list(range(count))[slice(*parts)]
    elif isinstance(spec, int):
        indices = [spec]
    else:
        indices = [int(i) for i in spec]
    if not indices:
        raise UserError(f"{what}={spec!r} selects no slices of a stack of {count}")
    bad = [i for i in indices if not -count <= i < count]
    if bad:
        raise UserError(f"{what}={spec!r} names slice {bad[0]}, but the stack has {count} slices (0 to {count - 1})")
    return [i % count for i in indices]
