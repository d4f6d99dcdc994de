"""What a network's output channels are: its classes, then one affinity channel per offset (``model.target``);
checked with the settings, before torch is imported."""

from __future__ import annotations

from collections.abc import Sequence

from src.utils.errors import UserError

AFFINITY_BOUNDARIES = ("cut", "nearest_cell")
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


def check_offsets(offsets: Sequence[Sequence[int]], where: str = "model.offsets") -> tuple[tuple[int, int], ...]:
    """The training offsets as ``(dy, dx)`` pairs: distinct, non-zero, 2-D (training draws slices)."""
    try:
        pairs = tuple(tuple(int(v) for v in offset) for offset in offsets)
    except (TypeError, ValueError):
        raise UserError(f"{where}={offsets} must be a list of [dy, dx] pixel offsets") from None
    if not pairs or any(len(p) != 2 or p == (0, 0) for p in pairs) or len(set(pairs)) != len(pairs):
        raise UserError(
            f"{where}={list(map(list, pairs))} must be distinct, non-zero [dy, dx] pairs (training reads 2-D "
            "slices; the decoders take 3-D offsets for volumes)"
        )
    return pairs


def module_net(model: dict) -> tuple[dict, str | None, dict | None]:
    """From a run's model config: the module's ``net`` (the network's settings alone, as its checkpoint records
    them), where training starts (``init_from``) and the module's ``affinities`` argument."""
    net = dict(model)
    init_from = net.pop("init_from", None)  # where training starts, not part of the network's shape
    return net, init_from, affinity_settings(net)


def affinity_settings(net: dict) -> dict | None:
    """Take ``target``, ``offsets`` and the ``affinity_*`` settings out of the model config; for
    ``target=affinities`` add one output channel per offset and return the module's ``affinities`` argument."""
    target = net.pop("target", "classes")
    keys = ("offsets", "affinity_loss", "affinity_weight", "affinity_boundary")
    offsets, loss, weight, boundary = (net.pop(key, None) for key in keys)
    if target not in ("classes", "affinities"):
        raise UserError(f"model.target={target} must be classes or affinities")
    if (boundary or "cut") not in AFFINITY_BOUNDARIES:
        raise UserError(f"model.affinity_boundary={boundary} must be one of {', '.join(AFFINITY_BOUNDARIES)}")
    if target == "classes":
        return None
    offsets = [list(offset) for offset in check_offsets(offsets or ())]
    net["num_classes"] += len(offsets)
    net["affinity_channels"] = len(offsets)
    weight = 1.0 if weight is None else float(weight)
    if not weight > 0:  # 0 would leave the affinity channels, which the decoders read, untrained
        raise UserError(f"model.affinity_weight={weight} must be positive (the affinity loss's weight)")
    return {"offsets": offsets, "loss": loss or "dice", "weight": weight, "boundary": boundary or "cut"}
