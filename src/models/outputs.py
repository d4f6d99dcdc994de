"""What a network's output channels are: its classes, then one affinity channel per offset (``model.target``)."""

from __future__ import annotations

from src.models.affinities import check_offsets
from src.utils.errors import UserError

BINARY_CLASSES = ["membrane", "interior"]  # a checkpoint written before classes were named is the binary U-Net


def named_outputs(channels: int, classes: list[str] | None, affinities: dict | None) -> tuple[list[str], tuple]:
    """The class names and the affinity offsets of a network with ``channels`` outputs, as the module's
    ``classes`` and ``affinities`` arguments give them; refused when the names do not fit the channels."""
    offsets = check_offsets(affinities["offsets"]) if affinities else ()
    count = channels - len(offsets)
    names = list(classes) if classes else (list(BINARY_CLASSES) if count == 2 else None)
    if names is None or len(names) != count:
        raise UserError(f"classes {classes} do not match the network's {count} output channels")
    return names, offsets
