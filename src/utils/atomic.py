"""Writing a file so that it appears complete or not at all: under a hidden temporary name, then renamed."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def partial_path(path: str | Path) -> Path:
    """The hidden temporary name ``path`` is written under: ``.<stem>.partial<suffix>`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write; on success it is renamed to ``path``, on failure it is removed.

    Side files a writer leaves beside the temporary one (``.<name>.partial*``) are removed either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        for extra in path.parent.glob(f"{tmp.name}*"):
            extra.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers never see a partial file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
