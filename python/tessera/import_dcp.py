"""Copying a DCP checkpoint directory (FileSystemWriter's format) into a
tessera store, as one checkpoint.

Streams: tensors are read through DCP's own FileSystemReader in batches of
at most `batch_bytes` (a tensor larger than that alone), each batch written
as a part (tessera/parts.h) and freed; memory stays bounded by the larger of
one tensor and `batch_bytes`. All parts are committed at the end in one
transaction, with the DCP Metadata stored as tessera.dcp.StorageWriter
stores it, so tessera.dcp.StorageReader returns it unchanged and
tessera.load reads the same keys. Non-tensor items are kept as their
torch.save bytes.
"""
from __future__ import annotations

import json
import os
import time

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

from . import _core, _dcp_metadata, _progress
from ._entries import METADATA_KEY, encode_object, tensor_entry, value_entry


def import_dcp(dcp_dir, store, checkpoint: str, *, batch_bytes: int = 256 << 20, compression: str = "auto",
               dedup: bool = True, progress=None) -> _core.SaveResult:
    """Imports the DCP checkpoint in `dcp_dir` as `checkpoint` of `store`
    (a path or tessera.Store, created if missing). Single process. Returns
    the commit's statistics, a tessera.SaveResult (logical_bytes,
    written_bytes, chunks, ...).

    progress: True for a bar on a terminal, or a callable taking a
    tessera.Progress ("import-dcp"; the tensor bytes imported, reported once
    per batch of `batch_bytes`)."""
    dcp_dir = os.fspath(dcp_dir)
    reader = dcp.FileSystemReader(dcp_dir)
    md = reader.read_metadata()
    s = store if isinstance(store, _core.Store) else _core.Store(os.fspath(store), create=True)
    if checkpoint in {c.name for c in s.checkpoints()}:
        raise _core.AlreadyExistsError(f"checkpoint '{checkpoint}' already exists in store '{s.path}'")
    tensors = {k: v for k, v in md.state_dict_metadata.items() if isinstance(v, TensorStorageMetadata)}
    objects = sorted(k for k, v in md.state_dict_metadata.items() if isinstance(v, BytesStorageMetadata))
    manifests: list[bytes] = []
    opts = dict(compression=compression, dedup=dedup)
    report = _progress.callback(progress)
    total = sum(t.size.numel() * t.properties.dtype.itemsize for t in tensors.values())
    done, start = 0, time.monotonic()

    def advance(n: int, finished: bool = False) -> None:
        nonlocal done
        done += n
        if report is not None:
            report("import-dcp", done, total, time.monotonic() - start, finished)

    def load_batch(names):
        sd = {n: torch.empty(tensors[n].size, dtype=tensors[n].properties.dtype) for n in names}
        dcp.load(sd, storage_reader=dcp.FileSystemReader(dcp_dir), no_dist=True)
        return sd

    try:
        advance(0)
        batch, size = [], 0
        names = sorted(tensors)
        for i, n in enumerate(names):
            t = tensors[n]
            batch.append(n)
            size += t.size.numel() * t.properties.dtype.itemsize
            if size >= batch_bytes or i == len(names) - 1:
                sd = load_batch(batch)
                m, _ = _core.write_part(s, [tensor_entry(k, v) for k, v in sd.items()], **opts)
                manifests.append(m)
                del sd
                advance(size)
                batch, size = [], 0
        if objects:
            # DCP's planner unpickles each object; keep it as torch.save bytes, as DCP wrote it.
            sd = {n: None for n in objects}
            dcp.load(sd, storage_reader=dcp.FileSystemReader(dcp_dir), no_dist=True)
            m, _ = _core.write_part(s, [value_entry(n, encode_object(sd[n])) for n in objects], **opts)
            manifests.append(m)
        meta = {METADATA_KEY: {"format": "dcp", "torch_saved": objects, "imported_from": os.path.abspath(dcp_dir),
                               "dcp_metadata": _dcp_metadata.encode(md)}}
        result = _core.commit_parts(s, checkpoint, manifests, world_size=1, metadata=json.dumps(meta))
        advance(0, finished=True)
        return result
    except BaseException:
        for m in manifests:
            _core.discard_part(s, m)
        raise
