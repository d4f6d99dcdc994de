"""The recipe's cells of a blockwise prediction, cut block by block and stitched: ``labels/cells/0`` of the output.

The post-processing methods decode one slice at a time (2-D), so each slice of a block is decoded from the block
grown by ``halo`` pixels (clipped at the slice's edges) of the stored affinities, or of the cells' probability. A
block keeps the cells of its own pixels. A cell that crosses a block face is found by both blocks, each of which
decoded the band of ``halo`` pixels on either side of the face; the two are one cell where their pixels in that
band overlap by more than half their union (IoU > 0.5, so a cell is matched with at most one across each face).
With a halo as wide as the slice every block decodes the whole slice, and the cells are the whole slice's. A
method with a contour map (agglomeration) writes each block's own pixels of the map of its grown box to
``contours/0``: a map of boundary strengths, so a threshold's cut of it joins cells across faces by itself.

Three passes over the prediction's blocks, each split across the processes as the prediction was: ``decode`` (a
block's cells numbered 1, 2, ... and its face bands, kept under the partial output's ``.cells/``), ``join`` (one
process: the matched pairs' connected components, the cells numbered 1, 2, ... in block order) and ``relabel``
(each block's cells written with their final numbers). Cell numbers are unique in the volume; cells do not cross
slices (each slice is decoded on its own, as src.predict's TIFF output and the scoring do).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from src.inference.blockwise import Block, Box
from src.inference.zarr_output import create_contour_map
from src.postprocess.instances import cells_and_contours, reads_affinities
from src.utils.errors import UserError

MATCH_IOU = 0.5  # above half their union: each cell has at most one partner across a face


def check_halo(halo: int) -> None:
    if int(halo) < 1:
        raise UserError(f"cells_halo={halo} must be at least 1 (pixels decoded around a block to stitch its cells)")


def grown_box(block: Block, halo: int, shape: tuple[int, int]) -> Box:
    """The block's (y, x) box grown by ``halo`` on each side, clipped to the slice of ``shape`` (H, W)."""
    top, bottom, left, right = block.box
    return max(0, top - halo), min(shape[0], bottom + halo), max(0, left - halo), min(shape[1], right + halo)


def face_pairs(blocks: list[Block]) -> list[tuple[Block, Block, int]]:
    """Each pair of blocks sharing a face within the same slices: (first, second, axis), axis 0 = y, 1 = x."""
    at = {(b.z, b.y[0], b.x[0]): b for b in blocks}
    pairs = []
    for block in blocks:
        for axis, key in ((0, (block.z, block.y[1], block.x[0])), (1, (block.z, block.y[0], block.x[1]))):
            if key in at:
                pairs.append((block, at[key], axis))
    return pairs


def face_band(first: Block, axis: int, halo: int, shape: tuple[int, int]) -> Box:
    """The slice pixels both blocks of a face decoded: ``halo`` either side of the face, along the first's core."""
    if axis == 0:
        face = first.y[1]
        return max(0, face - halo), min(shape[0], face + halo), *first.x
    face = first.x[1]
    return *first.y, max(0, face - halo), min(shape[1], face + halo)


def matched_cells(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (a, b) cell pairs of two labellings of the same pixels (0 = none) whose IoU exceeds ``MATCH_IOU``."""
    a, b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    keys, overlap = np.unique(a[both] * (b.max() + 1) + b[both], return_counts=True)
    first, second = keys // (b.max() + 1), keys % (b.max() + 1)
    union = np.bincount(a)[first] + np.bincount(b)[second] - overlap
    keep = overlap > MATCH_IOU * union
    return np.stack([first[keep], second[keep]], axis=1)


def _crop(labels: np.ndarray, box: Box, origin: Box) -> np.ndarray:
    top, bottom, left, right = box
    return labels[..., top - origin[0] : bottom - origin[0], left - origin[2] : right - origin[2]]


class BlockCells:
    """The cells of one blockwise output (the partial OME-Zarr group, opened read-write): see the module's docstring.

    Args:
        group: the output's zarr group, holding ``affinities/0`` or ``prob/0``.
        method: a built post-processing (:func:`src.postprocess.instances.build_postprocess`).
        halo: pixels of context decoded around a block on each side.
        blocks: the prediction's blocks.
    """

    def __init__(self, group, work: Path, method, halo: int, blocks: list[Block]) -> None:
        check_halo(halo)
        self.group, self.work, self.method, self.halo, self.blocks = group, Path(work), method, int(halo), blocks
        self.source = group["affinities/0"] if reads_affinities(method) else group["prob/0"]
        self.shape = tuple(self.source.shape[-2:])
        self.volume_shape = tuple(self.source.shape[-3:])

    def _band_file(self, block: Block) -> Path:
        return self.work / f"{block.index}.npz"

    def prepare(self) -> None:
        """Make the work folder and its array of block-local cell numbers, and the contour map's array where the
        method has one (all kept when resuming)."""
        import zarr

        self.work.mkdir(exist_ok=True)
        if hasattr(self.method, "contours"):
            create_contour_map(self.group)
        if not (self.work / "local").exists():
            chunks = self.blocks[0].shape
            zarr.open_array(self.work / "local", mode="w", shape=self.volume_shape, chunks=chunks, dtype=np.uint32)

    def pending(self) -> list[Block]:
        return [block for block in self.blocks if not self._band_file(block).exists()]

    def _read(self, z: int, box: Box) -> np.ndarray:
        top, bottom, left, right = box
        where = (z, slice(top, bottom), slice(left, right))
        values = self.source[(slice(None), *where)] if self.source.ndim == 4 else self.source[where]
        return values.astype(np.float32) / 255 if values.dtype == np.uint8 else values.astype(np.float32)

    def decode(self, block: Block) -> int:
        """Decode the block's slices from their grown boxes; keep its cells (numbered 1..n) and face bands."""
        import zarr

        grown = grown_box(block, self.halo, self.shape)
        top, bottom = block.y[0] - grown[0], block.y[1] - grown[0]  # the block within its grown box
        left, right = block.x[0] - grown[2], block.x[1] - grown[2]
        kept = np.zeros((block.shape[0], grown[1] - grown[0], grown[3] - grown[2]), np.uint32)
        maps = np.zeros(block.shape, np.float32) if hasattr(self.method, "contours") else None
        count = 0
        for s, z in enumerate(range(*block.z)):
            cells, contours = cells_and_contours(self.method, self._read(z, grown))
            if maps is not None:  # the block's own pixels of the map its grown box gave
                maps[s] = contours[top:bottom, left:right]
            ids = np.unique(cells[top:bottom, left:right])
            ids = ids[ids > 0]
            numbers = np.zeros(int(cells.max()) + 1, np.uint32)  # cells only in the halo belong to other blocks
            numbers[ids] = count + 1 + np.arange(len(ids), dtype=np.uint32)
            kept[s] = numbers[cells]
            count += len(ids)
        box = (slice(*block.z), slice(*block.y), slice(*block.x))
        if maps is not None:  # the block's chunk, written once
            self.group["contours/0"][box] = maps
        zarr.open_array(self.work / "local", mode="r+")[box] = kept[:, top:bottom, left:right]
        rows, cols = (
            slice(top + self.halo, max(bottom - self.halo, 0)),
            slice(left + self.halo, max(right - self.halo, 0)),
        )
        kept[:, rows, cols] = 0  # only the face bands are read again
        partial = self.work / f".{block.index}.partial.npz"
        np.savez_compressed(partial, labels=kept, box=np.array(grown), count=count)
        os.replace(partial, self._band_file(block))
        return count

    def _count(self, block: Block) -> int:
        with np.load(self._band_file(block)) as saved:  # reads the count alone, not the labels
            return int(saved["count"])

    def _bands(self, block: Block) -> tuple[np.ndarray, Box]:
        with np.load(self._band_file(block)) as saved:
            return saved["labels"], tuple(int(v) for v in saved["box"])

    def _face_edges(self, offsets: np.ndarray) -> list[np.ndarray]:
        """The matched cells of every face, as pairs of volume numbers. Faces come in their first block's order and
        a block's second is later, so each band file is read once and dropped once no face needs it (a row kept)."""
        edges, bands = [np.zeros((0, 2), np.int64)], {}
        for first, second, axis in face_pairs(self.blocks):
            bands = {index: saved for index, saved in bands.items() if index >= first.index}
            for block in (first, second):
                if block.index not in bands:
                    bands[block.index] = self._bands(block)
            (a, a_box), (b, b_box) = bands[first.index], bands[second.index]
            band = face_band(first, axis, self.halo, self.shape)
            for s in range(first.shape[0]):
                pairs = matched_cells(_crop(a[s], band, a_box), _crop(b[s], band, b_box))
                edges.append(pairs + [offsets[first.index], offsets[second.index]])
        return edges

    def join(self) -> int:
        """Number every block's cells in the volume, joining those matched across faces; returns the cells' count."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        counts = np.array([self._count(block) for block in self.blocks], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pairs = np.concatenate(self._face_edges(offsets)) - 1  # cell numbers from 1; graph nodes from 0
        total = int(counts.sum())
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(total, total))
        _, component = connected_components(graph, directed=False)
        _, first_seen = np.unique(component, return_index=True)
        rank = np.empty(len(first_seen), np.int64)
        rank[np.argsort(first_seen)] = np.arange(len(first_seen))  # numbered in the order their cells first appear
        final = np.concatenate([[0], rank[component] + 1])
        dtype = np.uint32 if len(first_seen) < 2**32 else np.uint64
        partial = self.work / ".numbers.partial.npz"
        np.savez(partial, final=final.astype(dtype), offsets=offsets)
        os.replace(partial, self.work / "numbers.npz")
        return len(first_seen)

    def numbers(self) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`join` wrote: each volume number's final number (0 stays 0), and each block's first number - 1."""
        with np.load(self.work / "numbers.npz") as numbers:
            return numbers["final"], numbers["offsets"]

    def relabel(self, block: Block, cells, numbers: tuple[np.ndarray, np.ndarray]) -> None:
        """Write the block's cells with their final ``numbers`` into ``cells`` (the output's label array)."""
        import zarr

        final, offset = numbers[0], int(numbers[1][block.index])
        box = (slice(*block.z), slice(*block.y), slice(*block.x))
        local = zarr.open_array(self.work / "local", mode="r")[box].astype(np.int64)
        cells[box] = np.where(local > 0, final[np.where(local > 0, local + offset, 0)], 0)


def cut_cells(cells: BlockCells, output, rank: int, world: int, barrier: Callable[[str], None]) -> int | None:
    """Run the three passes in process ``rank`` of ``world`` (``barrier`` waits for all of them); ``output`` (a
    :class:`src.inference.zarr_output.ZarrOutput`) gets its cells label image. Process 0 returns the cells' count."""
    if rank == 0:
        cells.prepare()
    barrier("cells: work folder ready")
    for block in cells.pending()[rank::world]:
        cells.decode(block)
    barrier("cells: blocks decoded")
    count = None
    if rank == 0:
        count = cells.join()
        output.create_cells(cells.numbers()[0].dtype)
    barrier("cells: numbered")
    array, numbers = output.cells_array(), cells.numbers()
    for block in cells.blocks[rank::world]:
        cells.relabel(block, array, numbers)
    barrier("cells: written")
    return count
