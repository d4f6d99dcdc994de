"""Reading an offline W&B run back from its own ``run-<id>.wandb`` file (what ``wandb sync`` uploads): a header,
then 32 KiB blocks of records (4-byte checksum, 2-byte length, 1-byte kind: whole, first, middle, last part),
each record a ``wandb_internal_pb2.Record`` protobuf. The summary is the last value of each key."""

from __future__ import annotations

import json
from pathlib import Path

BLOCK, HEADER, RECORD_HEADER = 32 * 1024, 7, 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts = HEADER, b""
    while pos + RECORD_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER:  # a block's tail too short for a record header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + RECORD_HEADER : pos + RECORD_HEADER + length], pos + RECORD_HEADER + length
        if kind == 0:
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record


def offline_run(run_dir: Path) -> dict:
    """The summary, the config's group and the logged keys of the one offline W&B run under ``run_dir/wandb``."""
    (path,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    summary, history_keys, group = {}, set(), None
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            history_keys.update(item.key or "/".join(item.nested_key) for item in record.history.item)
        elif kind == "run":
            group = record.run.run_group
    return {"summary": summary, "history_keys": history_keys, "group": group, "files": path.parent / "files"}
