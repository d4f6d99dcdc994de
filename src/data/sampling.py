"""Training-sample order and augmentation seeds that depend only on (seed, epoch): resumable and worker-free.

A training epoch draws ``length`` crops. :class:`EpochSeededSampler` yields, for each, ``(index, sample_seed)``:
a permutation of the indices and one seed per sample, both drawn from ``(seed, epoch)``. The dataset seeds the
crop and augmentation of that sample with ``sample_seed``. So epoch ``e`` sees the same crops whatever happened
before it: a run resumed from a checkpoint at an epoch boundary trains on exactly what the uninterrupted run
trained on, and the number of data workers (persistent or not) or DDP ranks does not change a sample.

Lightning calls :meth:`set_epoch` at the start of every training epoch, also through the wrapper it puts
around the sampler under DDP (which then hands each rank its share of the same sequence).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def draw_seed() -> int:
    """A fresh random base seed, for runs configured without one (``seed=null``)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


class EpochSeededSampler(Sampler[tuple[int, int]]):
    def __init__(self, length: int, seed: int | None = None) -> None:
        if length < 1:
            raise ValueError(f"an epoch needs at least one sample, got length={length}")
        self.length = length
        self.seed = draw_seed() if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.length)
        seeds = rng.integers(0, 2**32, size=self.length, dtype=np.uint64)
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))
