"""A trained network with its outputs named: what prediction needs of a checkpoint, built without Lightning.

:class:`NetworkOutputs` gives the logits and probabilities of ``self.net`` for an image of any size. The training
module (:class:`src.models.module.SegmentationModule`) and :class:`TrainedNetwork` (``src.predict``,
``src.export``) share it, so a checkpoint predicts the same either way, and prediction starts without Lightning's
seconds of import.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from src.inference.class_outputs import cell_probability
from src.inference.regions import output_probabilities
from src.inference.whole import predict_logits
from src.models.outputs import named_outputs
from src.models.unet import UNet, UNetEnsemble


class NetworkOutputs:
    """Logits and probabilities of ``self.net``; ``classes`` name its first output channels, ``offsets`` the
    affinity channels after them, ``boundary_class`` the class whose complement is the cells (or None)."""

    net: UNet | UNetEnsemble
    classes: list[str]
    offsets: tuple
    boundary_class: int | None
    memory_format: torch.memory_format

    def build_network(
        self, net: dict, classes: list[str] | None, boundary_class: int | None, affinities: dict | None, channels_last
    ) -> None:
        """Build ``net`` (a config with ``_target_``) and name its outputs, as the module's arguments give them."""
        self.net = instantiate(net)
        num_classes = (self.net.members[0] if isinstance(self.net, UNetEnsemble) else self.net).num_classes
        self.classes, self.offsets = named_outputs(num_classes, classes, affinities)
        self.boundary_class = boundary_class
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits for an image batch of any size (mirror-padded to fit the network, cropped back)."""
        return predict_logits(self.net, image.contiguous(memory_format=self.memory_format))

    def class_probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities ``(B, C, H, W)``, float32."""
        return self.probabilities(image)[:, : len(self.classes)]

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities, then the affinities (sigmoid) where the network has them: ``(B, C + K, H, W)``."""
        logits = self(image)
        return output_probabilities(logits, logits.shape[1] - len(self.classes))

    def interior_probability(self, image: torch.Tensor) -> torch.Tensor:
        """Probability of the cells (not the boundary class) ``(B, H, W)``: what V_rand and V_info score."""
        return cell_probability(self.class_probabilities(image), self.boundary_class)


class TrainedNetwork(NetworkOutputs, torch.nn.Module):
    """The network of a checkpoint src.train wrote, its outputs named as the training module named them;
    ``hparams``: the checkpoint's hyperparameters (the network config, the inference recipe)."""

    def __init__(self, hparams: dict) -> None:
        super().__init__()
        self.hparams = dict(hparams)
        self.build_network(
            hparams["net"],
            hparams.get("classes"),
            hparams.get("boundary_class", 0),
            hparams.get("affinities"),
            hparams.get("channels_last", True),
        )
