"""Atomic writes: a file appears complete or not at all, and a failed write leaves what was there."""

import json

import pytest

from src.utils.atomic import atomic_path, partial_path, write_json_atomic, write_text_atomic


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_pieces(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp == partial_path(target) and tmp.name == ".model.partial.onnx"
        tmp.write_text("half")
        tmp.with_name(tmp.name + ".data").write_text("side file an exporter wrote")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
