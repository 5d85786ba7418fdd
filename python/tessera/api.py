"""tessera.save / tessera.load: nested state dicts of tensors, DTensors and
Python values, straight to and from a store (no DCP planners involved).

Keys are flattened the way DCP flattens them ("model.layers.0.weight",
lists by index), so a checkpoint saved here loads through tessera.dcp and a
checkpoint saved through tessera.dcp loads here. Entries:

- torch.Tensor: saved whole. In a job of several ranks every rank must hold
  it (a replica); the ranks split its chunks, so each byte is written once.
- DTensor: its local shard, placed by its placements (global shape and
  offsets); ranks with equal shards (Replicate dims) split the chunks.
  Partial placements must be reduced first.
- int (64-bit), float, str, bytes: tessera values. Anything else (bool,
  None, lists, dicts of non-tensors, ...) is stored as bytes in torch.save
  format, named in the checkpoint metadata (python.torch_saved).
- Stateful objects (state_dict()/load_state_dict(), e.g. modules and DCP's
  AppState) stand for their state dict, as in DCP.

Several ranks: save() is a collective over the default process group (it
runs tessera's save protocol over the group's Store, see _dist.py); load()
needs no communication at all.
"""
from __future__ import annotations

import json
import os

import torch
from torch.distributed.checkpoint._nested_dict import flatten_state_dict
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.tensor import DTensor

from . import _core, _dist
from ._entries import (METADATA_KEY, VALUE_TEMPLATES, decode_object, encode_object, host_tensor, native_value,
                       tensor_entry)


def _store_path(store) -> str:
    return store.path if isinstance(store, _core.Store) else os.fspath(store)


def _unwrap_stateful(state_dict: dict) -> tuple[dict, dict]:
    """A copy of the top level with Stateful objects replaced by their state dicts."""
    plain, stateful = {}, {}
    for k, v in state_dict.items():
        if isinstance(v, Stateful) and not isinstance(v, torch.Tensor):
            stateful[k] = v
            plain[k] = v.state_dict()
        else:
            plain[k] = v
    return plain, stateful


def _rank_world() -> tuple[int, int]:
    if _dist.is_distributed():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def dtensor_box(name: str, dt: DTensor):
    """(local tensor, global shape, offsets, replica_index, replica_count) of
    this rank's shard, or None when this rank is not in the DTensor's mesh."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    mesh = dt.device_mesh
    coord = mesh.get_coordinate()
    if coord is None:
        return None
    replica_index, replica_count = 0, 1
    for dim, p in enumerate(dt.placements):
        if p.is_partial():
            raise ValueError(f"tensor '{name}': a Partial placement cannot be saved (reduce it first)")
        if p.is_replicate():
            replica_index = replica_index * mesh.size(dim) + coord[dim]
            replica_count *= mesh.size(dim)
    local_shape, offsets = compute_local_shape_and_global_offset(dt.shape, mesh, dt.placements)
    with torch.no_grad():
        local = dt.to_local()
    if tuple(local.shape) != tuple(local_shape):
        raise ValueError(f"tensor '{name}': local shard {list(local.shape)} does not match its placement "
                         f"{list(local_shape)} (uneven or strided sharding is not supported)")
    return local, list(dt.shape), list(offsets), replica_index, replica_count


def save(state_dict: dict, store, checkpoint: str, *, compression: str = "auto", chunk_bytes: int | None = None,
         dedup: bool = True, threads: int = 0, keep_last: int = 0, metadata: dict | None = None,
         timeout: float = 300.0) -> dict:
    """Saves `state_dict` as `checkpoint` of `store` (a path or tessera.Store).

    With a default process group of several ranks this is a collective: every
    rank calls it with its own shards and it returns on every rank after the
    commit, or raises on every rank (tessera.Error and subclasses; a rank that
    dies makes the others fail after `timeout` seconds). Returns this rank's
    statistics: logical_bytes, written_bytes, chunks, chunks_written, packs.
    """
    rank, world = _rank_world()
    path = _store_path(store)
    try:
        entries, keep, torch_saved = _describe_for_save(state_dict, rank, world)
    except Exception as e:
        if world == 1:
            raise
        # Fail the collective on every rank with this cause rather than leave the others waiting.
        _core.save_distributed(_dist.control_plane(), path, checkpoint, [], timeout, failure=str(e))
        raise
    meta = dict(metadata or {})
    meta[METADATA_KEY] = {"format": "tessera.save", "torch_saved": sorted(torch_saved)}
    opts = dict(compression=compression, dedup=dedup, threads=threads, keep_last=keep_last,
                metadata=json.dumps(meta))
    if chunk_bytes is not None:
        opts["chunk_bytes"] = chunk_bytes
    if world > 1:
        return _core.save_distributed(_dist.control_plane(), path, checkpoint, entries, timeout, **opts)
    s = store if isinstance(store, _core.Store) and not store.read_only else _core.Store(path)
    return _core.save(s, checkpoint, entries, **opts)


def _describe_for_save(state_dict: dict, rank: int, world: int):
    """(entries, tensors to keep alive, names of torch.save'd values)."""
    plain, _ = _unwrap_stateful(state_dict)
    flat, _ = flatten_state_dict(plain)
    entries, keep, torch_saved = [], [], []
    for name, v in flat.items():
        if isinstance(v, DTensor):
            box = dtensor_box(name, v)
            if box is None:
                continue
            local, shape, offsets, ri, rc = box
            t = host_tensor(name, local)
            keep.append(t)
            entries.append(tensor_entry(name, t, shape, offsets, ri, rc))
        elif isinstance(v, torch.Tensor):
            t = host_tensor(name, v)
            keep.append(t)
            entries.append(tensor_entry(name, t, None, None, rank, world))
        elif native_value(v):
            entries.append(("v", name, v))
        else:
            entries.append(("v", name, encode_object(v)))
            torch_saved.append(name)
    return entries, keep, torch_saved


def checkpoint_metadata(store: _core.Store, checkpoint: str) -> dict:
    """The Python package's part of a checkpoint's metadata JSON ({} if none)."""
    try:
        meta = json.loads(store.checkpoint(checkpoint)["metadata"] or "{}")
    except json.JSONDecodeError:
        return {}
    return meta.get(METADATA_KEY, {}) if isinstance(meta, dict) else {}


def load(state_dict: dict, store, checkpoint: str, *, strict: bool = True, verify: bool = True,
         threads: int = 0) -> dict:
    """Fills `state_dict` in place from `checkpoint` of `store` (a path or
    tessera.Store): tensors and DTensor shards get the bytes of their boxes,
    values are replaced, Stateful objects get load_state_dict(). Any layout and
    world size may load any checkpoint; no communication happens.

    Raises tessera.NotFoundError for an unknown checkpoint or (strict) keys the
    checkpoint lacks, tessera.InvalidArgument naming the tensor for a shape or
    dtype mismatch, tessera.CorruptionError on damaged data. Returns
    missing_keys, unexpected_keys, bytes_read, chunks_read.
    """
    s = store if isinstance(store, _core.Store) else _core.Store(_store_path(store), read_only=True)
    torch_saved = set(checkpoint_metadata(s, checkpoint).get("torch_saved", []))
    saved = {e["name"]: e for e in _core.describe(s, checkpoint)}
    plain, stateful = _unwrap_stateful(state_dict)
    flat, mapping = flatten_state_dict(plain)
    entries, staged, value_names = [], [], []
    for name, v in flat.items():
        if isinstance(v, torch.Tensor):
            if isinstance(v, DTensor):
                box = dtensor_box(name, v)
                if box is None:
                    continue
                local, shape, offsets, _, _ = box
            else:
                local, shape, offsets = v.detach(), None, None
            target = local
            if local.device.type != "cpu" or local.layout != torch.strided:
                target = torch.empty(local.shape, dtype=local.dtype, device="cpu")
                staged.append((local, target))
            entries.append(tensor_entry(name, target, shape, offsets))
        else:
            kind = saved[name]["kind"] if name in saved else "bytes"
            entries.append(("v", name, VALUE_TEMPLATES.get(kind, b"")))
            value_names.append(name)
    result = _core.load(s, checkpoint, entries, strict=strict, verify=verify, threads=threads)
    with torch.no_grad():
        for local, target in staged:
            local.copy_(target)
    missing = set(result["missing_keys"])
    for name in value_names:
        if name in missing:
            continue
        v = result["values"][name]
        set_element(plain, mapping[name], decode_object(v) if name in torch_saved else v)
    for k, obj in stateful.items():
        obj.load_state_dict(plain[k])
    for k in state_dict:
        if k not in stateful:
            state_dict[k] = plain[k]
    del result["values"]
    return result
