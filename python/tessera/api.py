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

Several ranks: save() and async_save() are collectives over the default
process group (tessera's save protocol over the group's Store, see
_dist.py). load() is one too by default (read_once): boxes several ranks
need are read once and sent between them (_replicated.py); with
read_once=False it needs no communication at all.

CUDA tensors pass through tessera's pinned staging (_staging.py): bounded
and pipelined for save(), one state's worth for async_save(), waves for
load().
"""
from __future__ import annotations

import concurrent.futures
import json
import os

import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.tensor import DTensor

from . import _core, _dist, _progress, _replicated, _staging
from ._entries import (METADATA_KEY, VALUE_TEMPLATES, decode_object, dtype_name, encode_object, native_value,
                       value_entry)
from ._reading import Box, read_boxes
from ._torch_compat import dtensor_box as _dtensor_box
from ._torch_compat import flatten_state_dict, set_element


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
    mesh = dt.device_mesh
    coord = mesh.get_coordinate()
    if coord is None:
        return None
    replica_index, replica_count = 0, 1
    for dim, p in enumerate(dt.placements):
        if p.is_partial():
            raise _core.InvalidArgument(f"tensor '{name}': a Partial placement cannot be saved (reduce it first)")
        if p.is_replicate():
            replica_index = replica_index * mesh.size(dim) + coord[dim]
            replica_count *= mesh.size(dim)
    local_shape, offsets = _dtensor_box(dt)
    with torch.no_grad():
        local = dt.to_local()
    if tuple(local.shape) != tuple(local_shape):
        raise _core.InvalidArgument(f"tensor '{name}': local shard {list(local.shape)} does not match its "
                                    f"placement {list(local_shape)} (uneven or strided sharding is not supported)")
    return local, list(dt.shape), list(offsets), replica_index, replica_count


_async_saves: list[concurrent.futures.Future] = []  # in flight, oldest first
_async_executor: concurrent.futures.ThreadPoolExecutor | None = None


def async_save(state_dict: dict, store, checkpoint: str, **options) -> concurrent.futures.Future:
    """save() in the background. Blocks only while the state's tensors are
    copied into tessera's pinned async staging (one non-blocking copy per
    tensor, one wait per device; the staging is pinned once per process and
    reused by later saves), then returns a concurrent.futures.Future of
    save()'s result; training may modify its tensors at once. Saves run one
    at a time in call order, on one background thread; a call waits first
    until the previous save has written its state (one state is staged at a
    time), and a later save() waits for the saves in flight. Options as for
    save(); in a job of several ranks every rank calls it, as it calls save().
    """
    global _async_executor
    plain, _ = _unwrap_stateful(state_dict)
    staged = _staging.stage_state_dict(plain)
    if _async_executor is None:
        _async_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tessera-save")

    def run():
        try:
            return _save(staged, store, checkpoint, **options)
        finally:
            staged.release()

    future = _async_executor.submit(run)
    _async_saves.append(future)
    return future


def reserve_staging(state_dict: dict) -> None:
    """Pins the async staging for a state like `state_dict` now (without
    saving), so that the first async_save / dcp.async_save does not pay for
    it (pinning runs at a few GB/s): call it once at start-up, e.g. after the
    first optimizer step, with the state you will save."""
    plain, _ = _unwrap_stateful(state_dict)
    _staging.stage_state_dict(plain).release()


def _after_fork_in_child() -> None:  # the background thread does not exist in a forked child
    global _async_executor
    _async_executor = None
    _async_saves.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _wait_for_async_saves() -> None:
    while _async_saves:
        f = _async_saves.pop(0)
        concurrent.futures.wait([f])  # its error stays with its future


def save(state_dict: dict, store, checkpoint: str, *, compression: str = "auto", chunk_bytes: int | None = None,
         dedup: bool = True, threads: int = 0, keep_last: int = 0, metadata: dict | None = None,
         timeout: float = 300.0, overwrite: bool = False, progress=None) -> _core.SaveResult:
    """Saves `state_dict` as `checkpoint` of `store` (a path or tessera.Store).

    With a default process group of several ranks this is a collective: every
    rank calls it with its own shards and it returns on every rank after the
    commit, or raises on every rank the same tessera.Error subclass with the
    same message, whichever rank failed (tessera.Error for an exception that is
    not tessera's; a rank that dies makes the others fail after `timeout`
    seconds, or twice that when it is rank 0). Returns this rank's
    statistics, a tessera.SaveResult: logical_bytes, written_bytes, chunks,
    chunks_written, packs (and on the committing rank, removed and
    freed_bytes of keep_last).

    CUDA tensors are staged through tessera's pinned save staging (1 GiB,
    reused): each is copied when a writer thread first needs it, and its
    staging is reused once its chunks are written. Waits first for
    async_save()s in flight (saves keep their call order).

    compression: how chunks are stored, one of "auto" (default), "none",
    "lz4", "shuffle-lz4", "shuffle-huffman" (tessera/compression.h says
    what each does); another name raises tessera.InvalidArgument.

    overwrite: saving to a name that exists replaces it in the commit's
    transaction (the old checkpoint stays loadable until then, and stays as
    it was if the save fails). Default False: names are immutable and such a
    save raises tessera.AlreadyExistsError.

    progress: True for a progress bar on a terminal, or a callable taking a
    tessera.Progress (this rank's bytes; see tessera._progress).
    """
    _wait_for_async_saves()
    return _save(state_dict, store, checkpoint, compression=compression, chunk_bytes=chunk_bytes, dedup=dedup,
                 threads=threads, keep_last=keep_last, metadata=metadata, timeout=timeout, overwrite=overwrite,
                 progress=progress)


def _save(state_dict: dict, store, checkpoint: str, *, compression: str = "auto", chunk_bytes: int | None = None,
          dedup: bool = True, threads: int = 0, keep_last: int = 0, metadata: dict | None = None,
          timeout: float = 300.0, overwrite: bool = False, progress=None) -> _core.SaveResult:
    rank, world = _rank_world()
    report = _progress.callback(progress)
    path = _store_path(store)
    staging = _staging.SaveStaging()
    try:
        try:
            entries, keep, torch_saved = _describe_for_save(state_dict, rank, world, staging)
        except Exception as e:
            if world == 1:
                raise
            # Fail the collective on every rank with this cause, as its class, rather than leave the others
            # waiting: save_distributed raises it on every rank (here with `e` as its context).
            _core.save_distributed(_dist.control_plane(), path, checkpoint, [], timeout, failure=str(e),
                                   failure_kind=_dist.error_kind(e))
            raise
        meta = dict(metadata or {})
        meta[METADATA_KEY] = {"format": "tessera.save", "torch_saved": sorted(torch_saved)}
        opts = dict(compression=compression, dedup=dedup, threads=threads, keep_last=keep_last,
                    metadata=json.dumps(meta), overwrite=overwrite)
        if chunk_bytes is not None:
            opts["chunk_bytes"] = chunk_bytes
        if report is not None:
            opts["progress"] = report
        if world > 1:
            return _core.save_distributed(_dist.control_plane(), path, checkpoint, entries, timeout, **opts)
        s = store if isinstance(store, _core.Store) and not store.read_only else _core.Store(path, create=True)
        return _core.save(s, checkpoint, entries, **opts)
    finally:
        staging.close()


def _describe_for_save(state_dict: dict, rank: int, world: int, staging: _staging.SaveStaging):
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
            entries.append(_staging.save_entry(name, local, staging, keep, shape, offsets, ri, rc))
        elif isinstance(v, torch.Tensor):
            entries.append(_staging.save_entry(name, v, staging, keep, None, None, rank, world))
        elif native_value(v):
            entries.append(value_entry(name, v))
        else:
            entries.append(value_entry(name, encode_object(v)))
            torch_saved.append(name)
    return entries, keep, torch_saved


def checkpoint_metadata(store: _core.Store, checkpoint: str) -> dict:
    """The Python package's part of a checkpoint's metadata JSON ({} if none)."""
    try:
        meta = json.loads(store.checkpoint(checkpoint).metadata or "{}")
    except json.JSONDecodeError:
        return {}
    return meta.get(METADATA_KEY, {}) if isinstance(meta, dict) else {}


def _refuse_other_dtype(checkpoint: str, name: str, saved: _core.EntryInfo, dest: torch.Tensor) -> None:
    """tessera.load fills tensors of the saved dtype only (the core's message
    names a C++ option Python does not have): says what a Python caller can do."""
    if saved.kind == "tensor" and saved.dtype != dtype_name(dest.dtype):
        raise _core.InvalidArgument(
            f"checkpoint '{checkpoint}', tensor '{name}': saved dtype {saved.dtype}, target "
            f"{dtype_name(dest.dtype)} (tessera.load does not convert: load into a {saved.dtype} tensor and "
            f"convert it with .to(torch.{dtype_name(dest.dtype)}), or load through tessera.dcp.StorageReader, "
            "which converts)")


def load(state_dict: dict, store, checkpoint: str, *, strict: bool = True, verify: bool = True,
         threads: int = 0, read_once: bool = True, trust_objects: bool = False,
         progress=None) -> _core.LoadResult:
    """Fills `state_dict` in place from `checkpoint` of `store` (a path or
    tessera.Store): tensors and DTensor shards get the bytes of their boxes,
    values are replaced, Stateful objects get load_state_dict(). Any layout and
    world size may load any checkpoint. CUDA tensors are filled through pinned
    staging, wave by wave, host-to-device copies overlapping the next reads.

    With a default process group of several ranks and read_once (default),
    load is a collective over that group (every rank calls it): boxes that
    several ranks need (replicated tensors, DTensors with Replicate
    placements) are read from storage once, split among those ranks, and the
    rows move between ranks over the group (one all_gather_object to agree
    on the boxes, one to agree on success, then point-to-point transfers); a
    failure on any rank raises on every rank, the same tessera.Error subclass
    (that of the lowest failing rank's error). read_once=False: no
    communication at all, each rank reads everything it needs.

    Python objects saved as torch.save bytes come back only if they are plain
    data (torch.load(weights_only=True): tensors, numbers, strings,
    containers); anything else raises tessera.InvalidArgument naming the value
    and nothing from the store is run, unless trust_objects=True.

    Raises tessera.NotFoundError for an unknown checkpoint or (strict) keys the
    checkpoint lacks, tessera.InvalidArgument naming the tensor for a shape or
    dtype mismatch (tensors load in their saved dtype: load into one and
    .to() it, or use tessera.dcp.StorageReader, which converts) or an expanded
    (stride 0) target, tessera.CorruptionError on damaged data. Returns a
    tessera.LoadResult: missing_keys, unexpected_keys, bytes_read,
    chunks_read (this rank's reads).

    progress: True for a progress bar on a terminal, or a callable taking a
    tessera.Progress (the bytes this rank's tensors receive from storage).
    """
    collective = read_once and _dist.is_distributed()
    report = _progress.callback(progress)
    failure = None
    try:
        s = store if isinstance(store, _core.Store) else _core.Store(_store_path(store), read_only=True)
        torch_saved = set(checkpoint_metadata(s, checkpoint).get("torch_saved", []))
        saved = {e.name: e for e in _core.describe(s, checkpoint)}
        plain, stateful = _unwrap_stateful(state_dict)
        flat, mapping = flatten_state_dict(plain)
        boxes, value_entries, requested = [], [], set()
        for name, v in flat.items():
            if isinstance(v, torch.Tensor):
                if isinstance(v, DTensor):
                    box = dtensor_box(name, v)
                    if box is None:
                        continue
                    local, shape, offsets, _, _ = box
                else:
                    local, shape, offsets = v.detach(), list(v.shape), [0] * v.dim()
                requested.add(name)
                if name in saved:
                    _refuse_other_dtype(checkpoint, name, saved[name], local)
                    boxes.append((_replicated.box_key(name, offsets, local.shape), Box(name, local, shape, offsets)))
            else:
                requested.add(name)
                if name in saved:
                    value_entries.append(value_entry(name, VALUE_TEMPLATES.get(saved[name].kind, b"")))
        missing = sorted(requested - set(saved))
        if missing and strict:
            shown = ", ".join(f"'{m}'" for m in missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise _core.NotFoundError(f"checkpoint '{checkpoint}' has no entries {shown} "
                                      "(load with strict=false to skip them)")
    except BaseException as e:
        if not collective:
            raise
        failure, boxes = e, []
    if collective:
        # Every rank's boxes, or its failure (kind and message): a failure raises its class on every rank.
        mine = (_dist.error_kind(failure), str(failure)) if failure is not None else [k for k, _ in boxes]
        everyone: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, mine)
        failed = [x if isinstance(x, tuple) else None for x in everyone]
        _dist.raise_together(f"load of checkpoint '{checkpoint}'", torch.distributed.get_rank(),
                             [f[0] if f else None for f in failed], failure, [f[1] if f else None for f in failed])
        plan = _replicated.plan_read_once(everyone, saved)
        stats = _replicated.read_once(s, checkpoint, boxes, plan, torch.distributed.get_rank(), {},
                                      verify=verify, threads=threads, progress=report)
    else:
        stats = read_boxes(s, checkpoint, [b for _, b in boxes], {}, verify=verify, threads=threads,
                           progress=report)
    values = _core.load(s, checkpoint, value_entries, verify=verify).values if value_entries else {}
    for name, v in values.items():
        set_element(plain, mapping[name], decode_object(name, v, trust_objects) if name in torch_saved else v)
    for k, obj in stateful.items():
        obj.load_state_dict(plain[k])
    for k in state_dict:
        if k not in stateful:
            state_dict[k] = plain[k]
    return _core.LoadResult(missing_keys=missing, unexpected_keys=sorted(set(saved) - requested),
                            bytes_read=stats["bytes_read"], chunks_read=stats["chunks_read"])
