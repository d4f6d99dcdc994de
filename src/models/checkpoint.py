"""Reading a checkpoint src.train wrote, as the training module or as its network alone, with clear errors for bad
files."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from src.utils.errors import UserError

if TYPE_CHECKING:
    from src.models.module import SegmentationModule
    from src.models.network import TrainedNetwork

log = logging.getLogger(__name__)


def find_last_checkpoint(task_log_dir: str | Path, current_run: str | Path) -> Path:
    """The newest ``checkpoints/last.ckpt`` of the earlier runs and multirun jobs under ``task_log_dir``.

    What ``ckpt_path=last`` means: every run writes to a new folder, so Lightning's own ``"last"`` (the newest
    checkpoint in *this* run's folder) would find nothing and silently start from scratch.
    """
    current = Path(current_run).resolve()
    found = [
        path
        for path in Path(task_log_dir).glob("**/checkpoints/last.ckpt")
        if current not in path.resolve().parents and path.is_file()
    ]
    if not found:
        raise UserError(
            f"ckpt_path=last: no earlier run under {task_log_dir} has checkpoints/last.ckpt; "
            "give the checkpoint's path instead (ckpt_path=<run dir>/checkpoints/last.ckpt)"
        )
    return max(found, key=lambda path: path.stat().st_mtime)


def resume_path(cfg) -> str | None:
    """``cfg.ckpt_path``, with ``last`` meaning the newest ``last.ckpt`` of the earlier runs of this task."""
    ckpt_path = cfg.get("ckpt_path")
    if str(ckpt_path) == "last":
        return str(find_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name, cfg.paths.output_dir))
    return str(ckpt_path) if ckpt_path else None


def check_resumable(ckpt_path: str | Path, net: dict) -> None:
    """Before resuming a run, refuse a checkpoint whose network differs from ``net``, naming both."""
    if str(ckpt_path) in ("best", "hpc", "registry"):
        return  # Lightning's own names; it finds the file
    path = Path(ckpt_path)
    saved = _saved_net(_read(path), f"checkpoint {path}")
    differ = sorted(key for key in saved.keys() | net.keys() if saved.get(key) != net.get(key))
    if differ:

        def describe(config: dict) -> str:
            return ", ".join(f"{key}={config.get(key)}" for key in differ)

        raise UserError(
            f"checkpoint {path} holds a network with {describe(saved)} but the config asks for {describe(net)}; "
            "resume with the checkpoint's model settings, or drop ckpt_path to start a new run"
        )


def _read(path: Path, map_location: str = "cpu") -> dict:
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path} (give ckpt_path=<run dir>/checkpoints/<name>.ckpt)")
    import torch  # a missing file is refused without torch's second of import

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise UserError(f"checkpoint {path} could not be read (UnpicklingError); is it a complete .ckpt?") from None
        raise UserError(
            f"checkpoint {path} holds objects other than tensors and plain values, which could run code when "
            "loaded; refused (src.train never writes such files: do not load checkpoints from untrusted sources)"
        ) from None
    except Exception as exc:
        raise UserError(
            f"checkpoint {path} could not be read ({type(exc).__name__}); is it a complete .ckpt?"
        ) from None


def read_checkpoint(ckpt_path: str | Path, map_location: str = "cpu") -> dict:
    """The contents of a checkpoint as src.train writes it (a network config and weights), read and checked with
    torch alone (``weights_only=True``: no code runs from the file), so a bad file is refused before Lightning."""
    path = Path(ckpt_path)
    checkpoint = _read(path, map_location)
    _saved_net(checkpoint, f"checkpoint {path}")
    return checkpoint


def _saved_net(checkpoint, name: str) -> dict:
    """The network config of a checkpoint src.train wrote (with its weights); ``name`` says which file, in the
    refusal of any other."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    net = hparams.get("net") if isinstance(hparams, dict) else None
    if not isinstance(net, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{name} was not written by src.train (no network config or weights in it)")
    return net


def saved_outputs(hparams: dict) -> tuple[list[str], int | None, tuple]:
    """The classes, boundary class and affinity offsets of a checkpoint's network from its hyperparameters, as the
    module names them, so a task can name (and refuse) its outputs before the module's seconds of building."""
    from src.models.outputs import named_outputs

    channels = _with_defaults(dict(hparams["net"])).get("num_classes")
    if not isinstance(channels, int):
        raise UserError(f"the checkpoint's network config names no output channels ({hparams['net']})")
    classes, offsets = named_outputs(channels, hparams.get("classes"), hparams.get("affinities"))
    return classes, hparams.get("boundary_class", 0), offsets


def load_module(ckpt_path: str | Path, map_location: str = "cpu", checkpoint: dict | None = None) -> SegmentationModule:
    """The training module saved in ``ckpt_path`` (for src.eval); ``checkpoint``: its contents when
    :func:`read_checkpoint` has read them. Prediction needs only :func:`load_network`."""
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path, map_location) if checkpoint is None else checkpoint
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "class_weights"}  # pre-`loss` files
    from src.models.module import SegmentationModule  # Lightning's seconds of imports, once the file is known good

    module = SegmentationModule(**hparams)
    _load_state(module, checkpoint["state_dict"], path)
    return module.eval()


def load_network(ckpt_path: str | Path, map_location: str = "cpu", checkpoint: dict | None = None) -> TrainedNetwork:
    """The network saved in ``ckpt_path`` with its outputs named, in eval mode: what src.predict and src.export
    need, built with torch alone (no Lightning); ``checkpoint``: its contents when already read."""
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path, map_location) if checkpoint is None else checkpoint
    from src.models.network import TrainedNetwork

    network = TrainedNetwork(checkpoint["hyper_parameters"])
    weights = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}  # the network's alone
    _load_state(network, weights, path)
    return network.eval()


def _load_state(module, state_dict: dict, path: Path) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise UserError(
            f"checkpoint {path} does not match its own network config: {str(exc).splitlines()[0]}"
        ) from None


def _with_defaults(net: dict) -> dict:
    """A network config with the defaults of its target's arguments filled in (configs may leave them out)."""
    import inspect

    from hydra.utils import get_method

    from src.models.unet import UNet

    try:
        target = get_method(net["_target_"])
    except Exception:
        return net
    defaults = {"members": 1}  # a plain UNet target is one network
    for fn in (UNet, target):  # build_unet passes the rest of its arguments to UNet
        for p in inspect.signature(fn).parameters.values():
            if p.default is not inspect.Parameter.empty:
                defaults[p.name] = p.default
    return {**defaults, **net}


def read_init_from(ckpt_path: str | Path, net: dict) -> dict:
    """The checkpoint ``ckpt_path`` that ``model.init_from`` starts from, read and refused (naming both) when its
    network's shape differs from ``net``, this run's network config: checked with the settings, before Lightning."""
    path = Path(ckpt_path)
    checkpoint = _read(path)
    saved, ours = _with_defaults(_saved_net(checkpoint, f"model.init_from={path}")), _with_defaults(dict(net))
    shape_keys = ("members", "in_channels", "depth", "base_channels", "padding", "norm", "up_mode")
    differ = [key for key in shape_keys if saved.get(key) != ours.get(key)]
    if differ:
        raise UserError(
            f"model.init_from={path} holds a network with {', '.join(f'{k}={saved.get(k)}' for k in differ)} but "
            f"this run's has {', '.join(f'{k}={ours.get(k)}' for k in differ)}; set the model keys to the "
            "checkpoint's, or drop model.init_from"
        )
    return checkpoint


def load_weights(module: SegmentationModule, ckpt_path: str | Path) -> None:
    """Start ``module`` from the network weights of ``ckpt_path`` (``model.init_from``): no optimizer state, no
    step count. A final layer of another class count is left newly initialised (said in one log line); a network
    of any other shape is refused, naming both (:func:`read_init_from`)."""
    path = Path(ckpt_path)
    checkpoint = read_init_from(path, module.hparams.net)
    weights = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    own = module.net.state_dict()
    reset = sorted(k for k, v in weights.items() if k in own and own[k].shape != v.shape)
    if any(".outc." not in f".{k}" for k in reset):
        raise UserError(f"model.init_from={path}: the weights {reset[:3]} do not fit this run's network")
    missing, unexpected = module.net.load_state_dict({k: v for k, v in weights.items() if k not in reset}, strict=False)
    if unexpected or any(k not in reset for k in missing):
        raise UserError(
            f"model.init_from={path}: the weights do not fit this run's network ({(missing + unexpected)[:3]})"
        )
    if reset:
        log.info(
            "model.init_from=%s: network weights loaded; the final layer was re-initialised (%d classes there, %d "
            "here)",
            path,
            len(weights[reset[0]]),
            len(own[reset[0]]),
        )
    else:
        log.info("model.init_from=%s: network weights loaded (no optimizer state, step 0)", path)
