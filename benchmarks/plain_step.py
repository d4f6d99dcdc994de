"""One step of the benchmark's plain PyTorch loop: a module's network, loss and optimizer over a batch in memory.

``benchmarks/train_throughput.py`` steps it in a bare ``for`` loop in its own process, and
:class:`benchmarks.step_timer.StepTimer` (``interleave=true``) steps a twin of the ``src.train`` module with it
between the real loop's training batches, so both loops are timed side by side in one process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

from src.models.module import SegmentationModule


class PlainStep:
    """``step()``: zero the gradients, forward under the precision's autocast, the module's loss, backward, step.

    Args:
        module: supplies the network (already in its memory format, compiled or not) and the loss.
        optimizer: a partial optimizer (``instantiate(cfg.optimizer)``), called with the network's parameters.
        batch_size, crop_size: the batch of random images and labels, made once and reused every step.
        bf16: run the forward pass and the loss under bf16 autocast (``trainer.precision=bf16-mixed``).
    """

    def __init__(
        self,
        module: SegmentationModule,
        optimizer: Callable[..., torch.optim.Optimizer],
        batch_size: int,
        crop_size: int,
        bf16: bool,
    ) -> None:
        self.net, self.loss_fn = module.net, module.loss
        self.optimizer = optimizer(self.net.parameters())
        out = self.net.output_size(crop_size) if hasattr(self.net, "output_size") else crop_size
        self.batch_size = batch_size
        self.image = torch.randn(batch_size, 1, crop_size, crop_size).contiguous(memory_format=module.memory_format)
        self.label = torch.randint(0, 2, (batch_size, out, out))
        self.weight = torch.rand(batch_size, out, out) + 0.5
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        self.net.train()
        self.marks: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def step(self) -> None:
        """One step; ``marks`` then holds the times it started, had the loss, had the gradients and ended."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad(), self.autocast:
            logits = self.net(self.image)
            if logits.shape[0] != self.label.shape[0]:  # an ensemble stacks its members' logits: as the module
                repeats = logits.shape[0] // self.batch_size  # does, repeat the labels to match (first step only)
                self.label, self.weight = self.label.repeat(repeats, 1, 1), self.weight.repeat(repeats, 1, 1)
            loss = self.loss_fn(logits, self.label, self.weight)
        backward = time.perf_counter()
        loss.backward()
        optimizer = time.perf_counter()
        self.optimizer.step()
        self.marks = (start, backward, optimizer, time.perf_counter())
