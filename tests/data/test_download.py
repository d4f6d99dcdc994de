"""The download path, proved against a loopback HTTP server serving the real ISBI files."""

import functools
import shutil
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest

from src.data.sources import IsbiSource
from src.utils.errors import UserError


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def served(tmp_path):
    """A loopback HTTP server over a folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = HTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_download_from_url_is_verified_and_used(served, isbi_dir, tmp_path):
    folder, url = served
    for name in ("train-volume.tif", "train-labels.tif"):
        shutil.copy(isbi_dir / name, folder / name)
    source = IsbiSource(root=str(tmp_path / "data"), mirror=None, base_url=url)
    source.prepare()
    images, labels = source.load()
    assert images.shape == (30, 512, 512) and labels.shape == (30, 512, 512)
    assert (tmp_path / "data" / "train-volume.tif").read_bytes() == (isbi_dir / "train-volume.tif").read_bytes()


def test_download_with_wrong_sha256_is_kept_aside_and_not_used(served, isbi_dir, tmp_path):
    folder, url = served
    shutil.copy(isbi_dir / "train-volume.tif", folder / "train-volume.tif")
    damaged = bytearray((isbi_dir / "train-labels.tif").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one pixel in the middle of the stack
    (folder / "train-labels.tif").write_bytes(bytes(damaged))
    source = IsbiSource(root=str(tmp_path / "data"), mirror=None, base_url=url)
    with pytest.raises(UserError, match="failed its sha256 check"):
        source.prepare()
    assert not (tmp_path / "data" / "train-labels.tif").exists()
    assert (tmp_path / "data" / "train-labels.tif.rejected").read_bytes() == bytes(damaged)


def test_mirror_copy_and_no_source_error(isbi_dir, tmp_path):
    IsbiSource(root=str(tmp_path / "a"), mirror=str(isbi_dir)).prepare()
    assert (tmp_path / "a" / "train-labels.tif").is_file()
    with pytest.raises(UserError, match="data=synthetic"):
        IsbiSource(root=str(tmp_path / "b"), mirror=None, base_url=None).prepare()


def test_plain_http_to_other_hosts_is_refused(tmp_path):
    source = IsbiSource(root=str(tmp_path / "c"), mirror=None, base_url="http://example.org/isbi")
    with pytest.raises(UserError, match="only https"):
        source.prepare()
