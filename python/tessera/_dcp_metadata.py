"""DCP's Metadata as plain data (JSON), never pickle: reading a store must
not run code from it (a store is a thing people download and share).

Stored under the checkpoint metadata's python.dcp_metadata (schema/CATALOG.md):

    {"format_version": 2,                         this encoding's version (below)
     "version": "1.0.0" | null,                   DCP's metadata version
     "tensors": {fqn: {"dtype": "bfloat16", "shape": [..], "layout": "strided",
                       "requires_grad": false, "memory_format": "contiguous_format",
                       "pin_memory": false}},
     "bytes": [fqn, ...],                       BYTE_IO items
     "planner_data": {fqn: [key, 0, ...]} | null, the DefaultSavePlanner's
                                                 flattening paths (str and int keys)
     "storage_meta": {"checkpoint_id": str | null, "save_id": str | null,
                      "modules": [str]} | null}

Only the fields above are kept: the saver's chunk lists and storage_data
are dropped (the catalog says where every box is), so the size does not grow
with the number of ranks. decode() accepts nothing but this shape; a value
of another type (a base64 pickle written by tessera before 2026-11-26: the
encoding's version 1) is never unpickled: the reader then describes the
tensors from the catalog. A format_version newer than FORMAT_VERSION is
refused (StoreError: written by a newer tessera).
"""
from __future__ import annotations

import torch
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, Metadata, StorageMeta, TensorProperties,
                                                   TensorStorageMetadata)

from . import _core
from ._entries import dtype_name, torch_dtype

FORMAT_VERSION = 2  # never reuse a number; bump when a field changes meaning

_LAYOUTS = {"strided": torch.strided, "sparse_coo": torch.sparse_coo}
_FORMATS = {"contiguous_format": torch.contiguous_format, "channels_last": torch.channels_last,
            "channels_last_3d": torch.channels_last_3d, "preserve_format": torch.preserve_format}


def _name(x, table: dict) -> str:
    for k, v in table.items():
        if v == x:
            return k
    raise ValueError(f"cannot store {x!r} in DCP metadata")


def encode(md: Metadata) -> dict:
    tensors, blobs = {}, []
    for fqn, v in md.state_dict_metadata.items():
        if isinstance(v, TensorStorageMetadata):
            p = v.properties
            tensors[fqn] = {"dtype": dtype_name(p.dtype), "shape": list(v.size),
                            "layout": _name(p.layout, _LAYOUTS), "requires_grad": bool(p.requires_grad),
                            "memory_format": _name(p.memory_format, _FORMATS), "pin_memory": bool(p.pin_memory)}
        else:
            blobs.append(fqn)
    planner = None
    if isinstance(md.planner_data, dict) and all(isinstance(p, (tuple, list)) and all(isinstance(k, (str, int))
                                                                                     for k in p)
                                                 for p in md.planner_data.values()):
        planner = {k: list(p) for k, p in md.planner_data.items()}
    sm = getattr(md, "storage_meta", None)
    storage = None if sm is None else {
        "checkpoint_id": None if sm.checkpoint_id is None else str(sm.checkpoint_id),
        "save_id": sm.save_id, "modules": list(getattr(sm, "modules", []) or [])}
    return {"format_version": FORMAT_VERSION, "version": getattr(md, "version", None), "tensors": tensors, "bytes": sorted(blobs),
            "planner_data": planner, "storage_meta": storage}


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise _core.CorruptionError(f"malformed DCP metadata in the store: {what}")


def decode(data) -> Metadata | None:
    """The Metadata `data` describes; None for anything but encode()'s shape
    (e.g. the pickled form of earlier versions, which is never unpickled).
    Raises tessera.CorruptionError for a dict that is malformed."""
    if not isinstance(data, dict) or "tensors" not in data:
        return None
    fv = data.get("format_version", FORMAT_VERSION)
    _expect(isinstance(fv, int), "format_version")
    if fv > FORMAT_VERSION:
        raise _core.StoreError(f"DCP metadata of format {fv} was written by a newer tessera (this one reads up to "
                               f"{FORMAT_VERSION}): upgrade tessera to load it")
    sdm: dict = {}
    tensors = data.get("tensors")
    _expect(isinstance(tensors, dict), "tensors")
    for fqn, t in tensors.items():
        _expect(isinstance(t, dict) and isinstance(t.get("shape"), list)
                and all(isinstance(n, int) and n >= 0 for n in t["shape"]), f"tensor '{fqn}'")
        props = TensorProperties(dtype=torch_dtype(str(t.get("dtype"))),
                                 layout=_LAYOUTS.get(t.get("layout"), torch.strided),
                                 requires_grad=bool(t.get("requires_grad", False)),
                                 memory_format=_FORMATS.get(t.get("memory_format"), torch.contiguous_format),
                                 pin_memory=bool(t.get("pin_memory", False)))
        sdm[fqn] = TensorStorageMetadata(properties=props, size=torch.Size(t["shape"]), chunks=[])
    for fqn in data.get("bytes", []) or []:
        _expect(isinstance(fqn, str), "bytes")
        sdm[fqn] = BytesStorageMetadata()
    md = Metadata(state_dict_metadata=sdm)
    planner = data.get("planner_data")
    if planner is not None:
        _expect(isinstance(planner, dict) and all(isinstance(p, list) and all(isinstance(k, (str, int)) for k in p)
                                                  for p in planner.values()), "planner_data")
        md.planner_data = {k: tuple(p) for k, p in planner.items()}
    if isinstance(data.get("version"), str):
        md.version = data["version"]
    sm = data.get("storage_meta")
    if isinstance(sm, dict):
        md.storage_meta = StorageMeta(checkpoint_id=sm.get("checkpoint_id"), save_id=sm.get("save_id"),
                                      modules=[m for m in sm.get("modules", []) if isinstance(m, str)])
    return md
