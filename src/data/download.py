"""Fetching data files from a local mirror or a URL, verified by sha256 before they are used."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from src.utils.errors import UserError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def sha256_of_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_url(url: str) -> None:
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return
    raise UserError(f"refusing to download {url}: only https URLs (or http on this machine's loopback) are used")


def _download(url: str, target: Path, timeout: float) -> None:
    _check_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise UserError(f"download of {url} failed ({exc})") from exc


def fetch_verified(
    name: str,
    destination: Path,
    verify: Callable[[Path], bool],
    mirror: str | Path | None = None,
    url: str | None = None,
    timeout: float = 60.0,
    mirror_variable: str = "ISBI2012_MIRROR",
) -> Path:
    """Put a verified copy of ``name`` at ``destination``: kept if already verified, else copied or downloaded.

    A fetched file that fails ``verify`` is moved aside to ``<destination>.rejected`` and never used.
    """
    if destination.exists() and verify(destination):
        return destination
    if destination.exists():
        aside = destination.with_name(destination.name + ".rejected")
        os.replace(destination, aside)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if mirror and (Path(mirror) / name).is_file():
            source = str(Path(mirror) / name)
            shutil.copyfile(source, tmp)
        elif url:
            source = url
            _download(url, tmp, timeout)
        else:
            raise UserError(
                f"{name} is missing from {destination.parent} and no mirror or URL is configured; "
                f"set {mirror_variable}=/path/to/folder (or data.source.mirror=...), give data.source.base_url, "
                "or train on generated data with data=synthetic"
            )
        if not verify(tmp):
            aside = destination.with_name(destination.name + ".rejected")
            os.replace(tmp, aside)
            raise UserError(
                f"{name} from {source} failed its sha256 check; it was kept aside as {aside} and not used: "
                "fetch it again or check the mirror"
            )
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
    return destination
