"""tessera as the storage of torch.distributed.checkpoint (DCP).

    import torch.distributed.checkpoint as dcp
    from tessera.dcp import StorageWriter, StorageReader

    dcp.save(state_dict, storage_writer=StorageWriter("/ckpt/run-7", "step-1000"))
    dcp.load(state_dict, storage_reader=StorageReader("/ckpt/run-7", "step-1000"))

DCP's planners decide what each rank writes and reads; tessera stores it.

Save. Every rank's write_data writes its WriteItems as chunks into packs of
its own (tessera's content-addressed chunks: chunks the store already holds
are referenced, not rewritten) and hands back the part's manifest (opaque
bytes) in the storage_data of its first WriteResult. DCP gathers the results
to the coordinator, whose finish() commits all manifests as one checkpoint
in one catalog transaction, with DCP's Metadata (see _dcp_metadata.py) in the
checkpoint's metadata JSON under python.dcp_metadata.
BYTE_IO items become tessera bytes values (their torch.save bytes, listed in
python.torch_saved), except a plain int, float or str (app.step, a learning
rate), stored as a value of that kind so that `tessera show` and `diff` print it. A save that fails anywhere commits nothing; packs that
ranks already wrote stay as garbage until `tessera gc` (after its grace period).

Load. read_metadata() returns the stored Metadata, or for a checkpoint
saved natively (C++ or tessera.save) one built from the catalog. Either way
each tensor is described as ONE chunk covering the whole tensor: tessera
stores tensors on its own chunk grid, not in the saver's shards, so DCP's
planner then emits one ReadItem per destination box, and read_data loads each
box with one tessera load call for the whole plan — reading only the chunks
that intersect the boxes and, of raw chunks, only the byte ranges needed.
Non-tensor values are handed to the planner as torch.save bytes.

GPU state. write_data stages CUDA tensors through tessera's pinned,
reused staging arena (tessera._staging.SAVE, 1 GiB by default): each tensor
is copied when a writer thread first needs it and its memory is reused once
its chunks are written, so copies overlap hashing and writing and host
memory stays within the arena. read_data lands CUDA destinations in pinned
staging wave by wave, the host-to-device copies overlapping the next reads.

dcp.async_save: StorageWriter is DCP's AsyncStager. stage() copies the
state into tessera's async arena (pinned once, reused by every later save
of this process, whichever writer object makes it) with one non-blocking
copy per tensor and one wait, which is all the call blocks for; the save
then runs in DCP's background thread (the C++ work releases the GIL) or
process, and the arena is free again once this rank's chunks are written.
A second async_save waits for the first to have written its state.

Replicated reads. When several ranks need the same box (dp replicas, every
rank loading the whole model), prepare_global_plan splits its rows among
them at chunk edges; each rank reads its rows and read_data moves them to
the others over the default process group (NCCL for CUDA, Gloo on CPU-only
jobs), so storage serves each byte once. A failure on any rank raises on
every rank. read_once=False turns this off (each rank reads all it needs);
it is off by itself when dcp.load runs over a group other than the default one.

DCP's FileSystemWriter / FileSystemReader options and protocol, and what
tessera does with each (torch 2.11):
  overwrite            supported, default True as in DCP: saving to a name that
                       exists replaces it atomically in the commit transaction
                       (the old checkpoint stays loadable until then, and
                       intact if the save fails; unchanged chunks are shared,
                       the rest left to gc). overwrite=False raises
                       AlreadyExistsError on every rank before anything is
                       written. (tessera.save defaults to False: immutable names.)
  storage_meta         supported: StorageMeta(checkpoint_id=the checkpoint name,
                       save_id) is stored with the checkpoint; read_metadata()
                       returns it with the reader's load_id. checkpoint_id is
                       the name (what dcp.save's checkpoint_id means for a
                       store), not a directory as for FileSystemWriter; DCP's
                       test_storage_meta, which expects the directory, fails
                       on that line alone.
  save_id / load_id    a fresh uuid per writer / reader and per reset().
  reset(checkpoint_id) supported: checkpoint_id becomes the checkpoint name.
  validate_checkpoint_id  always False: a store path plus a name, so DCP never
                       picks tessera by itself from a bare checkpoint_id.
  thread_count         `threads` (0: one per core; DCP's default is 1).
  single_file_per_rank meaningless: chunks go into packs, each writer thread of
                       each rank filling its own; not accepted.
  sync_files           always on: packs and the catalog are fsynced before a
                       checkpoint is visible; not accepted.
  per_thread_copy_ahead, cache_staged_state_dict
                       meaningless: tessera stages through its own pinned
                       arenas, always reused (see GPU state); not accepted.
  _extensions / _extension_registry
                       not supported: tessera's codecs are `compression`
                       ("auto", "none", "lz4", "shuffle-lz4", "shuffle-huffman").
Options not accepted raise TypeError (an unexpected keyword argument).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import time
import uuid
from typing import Any

import torch
from torch.distributed.checkpoint import StorageReader as _DcpReader
from torch.distributed.checkpoint import StorageWriter as _DcpWriter
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata,
                                                   StorageMeta, TensorProperties, TensorStorageMetadata)
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, LoadPlanner, SavePlan, SavePlanner, WriteItemType
from torch.distributed.checkpoint.staging import AsyncStager
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from . import _core, _dcp_metadata, _progress, _replicated, _staging
from ._entries import (METADATA_KEY, VALUE_TEMPLATES, decode_object, encode_object, sum_save_results, torch_dtype,
                       unique_rounds, value_entry)
from ._reading import Box, read_boxes
from ._staging import save_entry
from .api import _store_path, checkpoint_metadata

__all__ = ["StorageWriter", "StorageReader"]


@dataclasses.dataclass(frozen=True)
class PartManifests:
    """storage_data of a rank's first WriteResult: the manifests of the parts
    it wrote (opaque bytes for tessera._core.commit_parts), and the byte items
    it stored as plain values (see _plain_value)."""
    manifests: list
    plain_values: list = dataclasses.field(default_factory=list)


def _plain_value(blob: bytes) -> int | float | str | None:
    """What a DCP byte item holds when that is a plain int (of int64's range),
    float or str: stored as a tessera value of that kind, so `tessera show` and
    `diff` print it (app.step, a learning rate, a run name); None for anything
    else, which stays torch.save bytes. Read safely (weights_only). A reader
    hands the planner torch.save bytes of the value again: the same object,
    not the same bytes."""
    if len(blob) > 64 * 1024:
        return None
    try:
        obj = torch.load(io.BytesIO(blob), weights_only=True)
    except Exception:
        return None
    if type(obj) is int and -2**63 <= obj < 2**63 or type(obj) is float:
        return obj
    if type(obj) is str:
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return obj
    return None


def _done(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


class StorageWriter(_DcpWriter, AsyncStager):
    """Writes a DCP save as checkpoint `checkpoint` of the tessera store at
    `store` (a path or tessera.Store; created if missing). dcp.save's
    checkpoint_id, when given, replaces the checkpoint name.

    Options as for tessera.save: compression (one of "auto", "none", "lz4",
    "shuffle-lz4", "shuffle-huffman"; default "auto"), chunk_bytes, dedup, threads, keep_last,
    and metadata (a dict recorded with the checkpoint); overwrite (default
    True, DCP's default and meaning: see the module doc); progress (True for
    a bar on a terminal, or a callable taking a tessera.Progress).
    """

    def __init__(self, store, checkpoint: str, *, compression: str = "auto", chunk_bytes: int | None = None,
                 dedup: bool = True, threads: int = 0, keep_last: int = 0, metadata: dict | None = None,
                 overwrite: bool = True, progress=None):
        super().__init__()
        self.progress = progress  # see tessera._progress; not pickled
        self.store_path = _store_path(store)
        self.checkpoint = checkpoint
        self.overwrite = overwrite
        self.save_id = str(uuid.uuid4())
        self.options = dict(compression=compression, dedup=dedup, threads=threads)
        if chunk_bytes is not None:
            self.options["chunk_bytes"] = chunk_bytes
        self.keep_last = keep_last
        self.user_metadata = dict(metadata or {})
        self.is_coordinator = False
        self.rank = 0
        self.last_stats: _core.SaveResult | None = None  # this rank's write statistics after write_data
        self.commit_stats: _core.SaveResult | None = None  # the coordinator's totals after finish
        self.timings: dict[str, float] = {}  # seconds this rank spent in write_data and finish
        self._staged: _staging.StagedStateDict | None = None  # from stage(), released after write_data

    # -- AsyncStager (dcp.async_save) ----------------------------------------
    _synchronize_after_execute = False  # stage() returns only once the copy is complete

    def stage(self, state_dict: dict) -> dict:
        """A copy of `state_dict` in tessera's pinned async arena (see the module doc)."""
        self._staged = _staging.stage_state_dict(state_dict)
        return self._staged

    def synchronize_staging(self) -> None:
        pass  # stage() is complete when it returns

    def close(self) -> None:
        self._release_staged()

    def _release_staged(self) -> None:
        staged, self._staged = self._staged, None
        if staged is not None:
            staged.release()

    def __getstate__(self):  # DCP's process executor pickles the writer: the staged copy stays here
        state = dict(self.__dict__)
        state["_staged"] = None
        state["progress"] = None  # a callable need not pickle; the copy reports nothing
        return state

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.checkpoint = os.fspath(checkpoint_id)
        self.last_stats = self.commit_stats = None
        self.timings = {}
        self.save_id = str(uuid.uuid4())

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint name this writer saves (DCP's checkpoint_id)."""
        return self.checkpoint

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.is_coordinator = is_coordinator
        self.rank = kwargs.get("rank", torch.distributed.get_rank() if torch.distributed.is_initialized() else 0)
        if is_coordinator:  # creates the store, and fails early (on every rank, via DCP) for a taken name
            store = _core.Store(self.store_path, create=True)
            names = {c.name for c in store.checkpoints()}
            if self.checkpoint in names and not self.overwrite:
                raise _core.AlreadyExistsError(
                    f"checkpoint '{self.checkpoint}' already exists in store '{self.store_path}'")

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        return plans

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        t0 = time.perf_counter()
        try:
            return self._write_data(plan, planner)
        finally:
            self._release_staged()  # this rank's chunks are written (or the save failed)
            self.timings["write_data"] = time.perf_counter() - t0

    def _write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        results, entries, keep, plain = [], [], [], []
        staging = _staging.SaveStaging()
        for item in plan.items:
            data = planner.resolve_data(item)
            fqn = item.index.fqn
            if item.type == WriteItemType.BYTE_IO:
                blob = data.getvalue() if isinstance(data, io.BytesIO) else bytes(data)
                value = _plain_value(blob)
                if value is not None:
                    plain.append(fqn)
                entries.append(value_entry(fqn, blob if value is None else value))
                size = len(blob)
            else:
                td = item.tensor_data
                entries.append(save_entry(fqn, data, staging, keep, list(td.size), list(td.chunk.offsets)))
                size = data.numel() * data.element_size()
            results.append(WriteResult(index=item.index, size_in_bytes=size, storage_data=None))
        if not entries:
            self.last_stats = _core.SaveResult()
            return _done(results)
        # The store exists (the coordinator created it before DCP's plan exchange); only the commit writes the catalog.
        store = _core.Store(self.store_path, read_only=True)
        manifests, stats = [], []
        options = dict(self.options)
        if (report := _progress.callback(self.progress)) is not None:
            options["progress"] = report
        try:
            for part in unique_rounds(entries, key=lambda e: e.name):
                m, s = _core.write_part(store, part, self.rank, **options)
                manifests.append(m)
                stats.append(s)
        except BaseException:
            for m in manifests:
                _core.discard_part(store, m)
            raise
        finally:
            staging.close()
        self.last_stats = sum_save_results(stats)
        results[0] = dataclasses.replace(results[0], storage_data=PartManifests(manifests, plain))
        return _done(results)

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        t0 = time.perf_counter()
        try:
            self._finish(metadata, results)
        finally:
            self.timings["finish"] = time.perf_counter() - t0

    def _finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        parts = [wr.storage_data for rank_results in results for wr in rank_results
                 if isinstance(wr.storage_data, PartManifests)]
        manifests = [m for p in parts for m in p.manifests]
        plain = {n for p in parts for n in p.plain_values}
        torch_saved = sorted(fqn for fqn, md in metadata.state_dict_metadata.items()
                             if isinstance(md, BytesStorageMetadata) and fqn not in plain)
        metadata = dataclasses.replace(metadata, storage_meta=self.storage_meta())
        meta = dict(self.user_metadata)
        meta[METADATA_KEY] = {"format": "dcp", "torch_saved": torch_saved, "dcp_metadata": _dcp_metadata.encode(metadata)}
        store = _core.Store(self.store_path)
        try:
            self.commit_stats = _core.commit_parts(store, self.checkpoint, manifests, world_size=len(results),
                                                   metadata=json.dumps(meta), keep_last=self.keep_last,
                                                   overwrite=self.overwrite)
        except BaseException:
            for m in manifests:  # every rank's packs: they are garbage now
                _core.discard_part(store, m)
            raise

    def storage_meta(self) -> StorageMeta:
        return StorageMeta(checkpoint_id=self.checkpoint, save_id=self.save_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return False  # a store path plus a checkpoint name: never picked by DCP's automatic storage selection


class StorageReader(_DcpReader):
    """Reads checkpoint `checkpoint` of the tessera store at `store` for
    dcp.load, whether DCP (through StorageWriter) or tessera (C++,
    tessera.save) saved it. dcp.load's checkpoint_id, when given, replaces
    the checkpoint name. `verify` checks every chunk read (default True).

    Nothing in the store runs code: DCP's Metadata is stored as data, and a
    non-tensor item reaches DCP's planner (which unpickles it) only if
    torch.load(weights_only=True) accepts it (plain data); otherwise the load
    fails naming it, unless trust_objects=True. progress: as for tessera.load.

    After read_data, `bytes_read` holds the bytes this rank read from packs,
    and `last_stats` this rank's read statistics (with read_once: the seconds
    spent reading and exchanging, and the number of transfers), and
    `timings` the seconds this rank spent in each StorageReader step.
    """

    def __init__(self, store, checkpoint: str, *, verify: bool = True, threads: int = 0, read_once: bool = True,
                 trust_objects: bool = False, progress=None):
        super().__init__()
        self.progress = progress  # see tessera._progress
        self.store_path = _store_path(store)
        self.checkpoint = checkpoint
        self.verify = verify
        self.threads = threads
        self.read_once = read_once
        self.trust_objects = trust_objects
        self.load_id = str(uuid.uuid4())
        self.bytes_read = 0
        self.last_stats: dict = {}
        self.timings: dict[str, float] = {}
        self.rank = 0
        self._store: _core.Store | None = None
        self._kinds: dict[str, str] = {}
        self._dtypes: dict[str, str] = {}
        self._described: dict[str, _core.EntryInfo] = {}
        self._torch_saved: set[str] = set()

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.checkpoint = os.fspath(checkpoint_id)
        self._store = None
        self.bytes_read = 0
        self.timings = {}
        self._kinds, self._dtypes = {}, {}
        self.load_id = str(uuid.uuid4())

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint name this reader loads (DCP's checkpoint_id)."""
        return self.checkpoint

    def _open(self) -> _core.Store:
        if self._store is None:
            self._store = _core.Store(self.store_path, read_only=True)
        return self._store

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        # DCP swallows read_metadata's exceptions (and then fails with "metadata
        # is None"); keep the cause and raise it from set_up_storage_reader.
        self._error = None
        t0 = time.perf_counter()
        try:
            return self._read_metadata()
        except _core.Error as e:
            self._error = e
            return Metadata(state_dict_metadata={})
        finally:
            self.timings["read_metadata"] = time.perf_counter() - t0

    def _read_metadata(self) -> Metadata:
        store = self._open()
        py = checkpoint_metadata(store, self.checkpoint)
        self._torch_saved = set(py.get("torch_saved", []))
        md = _dcp_metadata.decode(py.get("dcp_metadata")) or Metadata(state_dict_metadata={})
        saved = md.state_dict_metadata
        catalog: dict = {}
        self._kinds = {}
        for e in _core.describe(store, self.checkpoint):  # the catalog is the source of truth
            name, kind = e.name, e.kind
            self._kinds[name] = kind
            self._dtypes[name] = e.dtype
            self._described[name] = e
            if kind != "tensor":
                catalog[name] = BytesStorageMetadata()
                continue
            shape = torch.Size(e.shape)
            old = saved.get(name)
            props = old.properties if isinstance(old, TensorStorageMetadata) else TensorProperties(
                dtype=torch_dtype(e.dtype))
            catalog[name] = TensorStorageMetadata(
                properties=props, size=shape,
                chunks=[ChunkStorageMetadata(offsets=torch.Size([0] * len(shape)), sizes=shape)])
        md.state_dict_metadata = catalog
        md.storage_data = None
        if getattr(md, "storage_meta", None) is None:  # saved natively, or by an older tessera
            md.storage_meta = StorageMeta(checkpoint_id=self.checkpoint)
        md.storage_meta.load_id = self.load_id
        return md

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_error", None) is not None:
            raise self._error
        self.rank = kwargs.get("rank", torch.distributed.get_rank() if torch.distributed.is_initialized() else 0)
        self._shapes = {k: v.size for k, v in metadata.state_dict_metadata.items()
                        if isinstance(v, TensorStorageMetadata)}
        if not self._kinds:  # read_metadata ran on another reader instance
            self._read_metadata()

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        """On the coordinator: with read_once, which rank reads which rows of
        the boxes several ranks need (see the module doc), in every plan."""
        dist = torch.distributed
        if not (self.read_once and len(plans) > 1 and dist.is_initialized() and dist.get_world_size() == len(plans)):
            return plans
        t0 = time.perf_counter()
        try:
            return self._plan_read_once(plans)
        finally:
            self.timings["prepare_global_plan"] = time.perf_counter() - t0

    def _plan_read_once(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        if not self._described:
            self._read_metadata()
        boxes = [[_replicated.box_key(it.storage_index.fqn, self._start(it), it.lengths)
                  for it in p.items if it.type != LoadItemType.BYTE_IO] for p in plans]
        once = _replicated.plan_read_once(boxes, self._described)
        if not once.parts:
            return plans
        return [dataclasses.replace(p, storage_data=once) for p in plans]

    def _start(self, it) -> list:
        shape = self._shapes[it.storage_index.fqn] if self._shapes else self._described[it.storage_index.fqn].shape
        return [o + s for o, s in zip(it.storage_index.offset or [0] * len(shape), it.storage_offsets)]

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        t0 = time.perf_counter()
        try:
            return self._read_data(plan, planner)
        finally:
            self.timings["read_data"] = time.perf_counter() - t0

    def _read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        store = self._open()
        byte_items = [it for it in plan.items if it.type == LoadItemType.BYTE_IO]
        tensor_items = [it for it in plan.items if it.type != LoadItemType.BYTE_IO]
        self._read_tensors(store, plan, planner, tensor_items)
        if byte_items:
            names = sorted({it.storage_index.fqn for it in byte_items})
            entries = [value_entry(n, VALUE_TEMPLATES.get(self._kinds.get(n, "bytes"), b"")) for n in names]
            values = _core.load(store, self.checkpoint, entries, verify=self.verify).values
            for it in byte_items:
                fqn = it.storage_index.fqn
                v = values[fqn]
                blob = v if fqn in self._torch_saved else encode_object(v)
                if fqn in self._torch_saved and not self.trust_objects:
                    decode_object(fqn, blob)  # DCP's planner unpickles it: only plain data gets that far
                planner.load_bytes(it, io.BytesIO(blob))
        return _done(None)

    def _read_tensors(self, store: _core.Store, plan: LoadPlan, planner: LoadPlanner, items: list) -> None:
        once = plan.storage_data if isinstance(plan.storage_data, _replicated.ReadOncePlan) else None
        boxes, failure = [], None
        try:
            for it in items:
                fqn = it.storage_index.fqn
                dest = planner.resolve_tensor(it).detach()
                start = self._start(it)
                boxes.append((_replicated.box_key(fqn, start, it.lengths),
                              Box(fqn, dest, list(self._shapes[fqn]), start)))
        except BaseException as e:
            if once is None:
                raise
            failure = e  # the others are about to wait for this rank: fail together
        saved = {b.name: torch_dtype(self._dtype(b.name)) for _, b in boxes}
        report = _progress.callback(self.progress)
        if once is not None:
            stats = _replicated.read_once(store, self.checkpoint, boxes, once, self.rank, saved, verify=self.verify,
                                          threads=self.threads, failure=failure, progress=report)
        else:
            stats = read_boxes(store, self.checkpoint, [b for _, b in boxes], saved, verify=self.verify,
                               threads=self.threads, progress=report)
        self.bytes_read += stats["bytes_read"]
        self.last_stats = stats
        for it, (_, box) in zip(items, boxes):
            planner.commit_tensor(it, box.dest)

    def _dtype(self, fqn: str) -> str:
        return self._dtypes[fqn]

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return False
