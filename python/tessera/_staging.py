"""Host staging for device tensors: pinned memory, reused, bounded.

GPU bytes reach storage (and come back) through host memory. This module
owns that memory so that it is pinned once per process and reused by every
save and load, instead of a pageable copy of the whole state per call:

- Arena: blocks of pinned host memory (plain memory when CUDA is absent),
  handed out as leases of aligned byte ranges. A lease may be returned at
  once or after a CUDA event (a host-to-device copy still reading from it).
  take() waits while the arena is at its bound; an arena never shrinks.
- save_entry / LoadStaging.entry: the staged entry descriptions
  (tessera._core.StagedDesc) for one device tensor; the core calls their acquire/release hooks when the
  bytes move (see _core.cc). A save stages an entry when a worker first
  needs its bytes and releases it once its chunks are written, so the copies
  of later tensors overlap the hashing and writing of earlier ones and host
  memory stays within the arena's bound. A load lands each wave of entries
  in the arena and queues the host-to-device copies, which overlap the next
  wave's reads.

Three arenas per process (module level, so that separate writers and
readers share them): SAVE (synchronous saves, bound SAVE_BYTES), LOAD
(bound LOAD_BYTES; waves are half of it) and ASYNC (async saves: grows to the
largest state staged, see stage_state_dict).
"""
from __future__ import annotations

import math
import os
import threading
import time
import weakref

import torch

from . import _core
from ._entries import dtype_name, tensor_entry
from ._torch_compat import (cuda_in_bad_fork, dtensor_from_parts, dtensor_parts, new_shared_storage, pin,
                            unpin)

MiB = 1 << 20
BLOCK_BYTES = 256 * MiB  # blocks are powers of two of at least this, so PyTorch's pinned allocator wastes nothing
ALIGN = 4096

SAVE_BYTES = 1 << 30  # default bound of synchronous-save staging
LOAD_BYTES = 1 << 30  # default bound of load staging (two waves of half of it)


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _pow2_at_least(n: int, smallest: int = BLOCK_BYTES) -> int:
    p = smallest
    while p < n:
        p *= 2
    return p


def pinned_available() -> bool:
    """Whether host memory can be pinned here: CUDA present, and this is not a
    process forked after CUDA started in its parent (CUDA cannot start there)."""
    return torch.cuda.is_available() and not cuda_in_bad_fork()


class Lease:
    """A range of an arena's block; `tensor` is a uint8 view of it."""

    __slots__ = ("arena", "block", "start", "size", "tensor", "released")

    def __init__(self, arena: "Arena", block: int, start: int, size: int, tensor: torch.Tensor):
        self.arena, self.block, self.start, self.size, self.tensor = arena, block, start, size, tensor
        self.released = False

    def view(self, dtype: torch.dtype, shape) -> torch.Tensor:
        """The lease's first bytes as a contiguous tensor of `dtype` and `shape`."""
        return self.tensor[:math.prod(shape) * dtype.itemsize].view(dtype).view(tuple(shape))

    def release(self, after: "torch.cuda.Event | None" = None) -> None:
        """Returns the range now, or once `after` (a recorded CUDA event) has completed."""
        self.arena._give_back(self, after)


class Arena:
    """Blocks of host memory handed out in aligned ranges, at most `bound` bytes
    of blocks in all (a single request larger than the bound gets a block of
    its own once nothing else is leased). Thread-safe."""

    def __init__(self, name: str, bound: int | None, shared: bool = False, block_bytes: int = BLOCK_BYTES):
        self.name = name
        self.bound = bound  # None: no bound
        self.block_bytes = block_bytes  # smallest block (blocks are powers of two times it)
        self.blocks_added = 0  # blocks allocated (pinned) so far, for tests and reports
        self.peak_leased = 0   # most bytes leased at once so far
        # Blocks in shared memory (then pinned by registering them): tensors
        # in them pickle to another process without being copied or moved
        # (DCP's process executor), as DCP's own pinned+shared staging does.
        self.shared = shared
        self._blocks: list[torch.Tensor] = []
        self._free: list[list[tuple[int, int]]] = []  # per block: free (start, end), sorted
        self._pending: list[tuple[object, Lease]] = []  # (event, lease) returned after an event
        self._leased = 0
        self._cv = threading.Condition()
        self._pinned: bool | None = None  # decided at the first block, not at import (fork-safe)
        self._unpins: list = []  # finalizers that unregister shared blocks

    def _forget(self) -> None:
        """In a forked child: start empty. Shared blocks are still mapped in
        the parent, which would see this process's writes."""
        for f in self._unpins:  # the registration is the parent's; CUDA cannot run here
            f.detach()
        self._unpins = []
        self._blocks, self._free, self._pending = [], [], []
        self._leased = 0
        self._pinned = None
        self._cv = threading.Condition()

    @property
    def pinned(self) -> bool:
        """Whether the blocks are pinned (decided when the first is allocated)."""
        if self._pinned is None:
            self._pinned = pinned_available()
        return self._pinned

    # -- inspection ---------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Bytes of blocks the arena holds (leased or free)."""
        with self._cv:
            return sum(b.numel() for b in self._blocks)

    @property
    def leased(self) -> int:
        with self._cv:
            return self._leased

    # -- leasing ------------------------------------------------------------
    def take(self, nbytes: int, timeout: float | None = None) -> Lease:
        """A lease of at least `nbytes`, waiting while the arena is full.
        Raises TimeoutError after `timeout` seconds (None: wait forever)."""
        size = _round_up(max(nbytes, 1), ALIGN)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                self._reclaim(block_on_oldest=False)
                lease = self._fit(size)
                if lease is not None:
                    return lease
                if self._may_grow(size):
                    self._add_block(size)
                    continue
                if self._pending:  # a host-to-device copy still reads from some range: wait for the oldest
                    self._reclaim(block_on_oldest=True)
                    continue
                self._wait(deadline, lambda: f"no {size} bytes free within {timeout} s "
                                             f"({self._leased} of {self.bound} bytes leased)")

    def _may_grow(self, size: int) -> bool:
        have = sum(b.numel() for b in self._blocks)
        if self.bound is None or have + _pow2_at_least(size, self.block_bytes) <= self.bound:
            return True
        if self._leased == 0 and not self._pending and size > max((b.numel() for b in self._blocks), default=0):
            # Larger than any block and nothing in use: replace the blocks by one that fits.
            self._blocks.clear()
            self._free.clear()
            return True
        return False

    def _add_block(self, size: int) -> None:
        n = _pow2_at_least(size, self.block_bytes)
        self.blocks_added += 1
        if self.shared:
            block = torch.empty(0, dtype=torch.uint8).set_(new_shared_storage(n))
            if self.pinned:
                pin(block.data_ptr(), n)
                self._unpins.append(weakref.finalize(block, unpin, block.data_ptr()))
        else:
            block = torch.empty(n, dtype=torch.uint8, pin_memory=self.pinned)
        self._blocks.append(block)
        self._free.append([(0, n)])

    def _fit(self, size: int) -> Lease | None:
        for b, free in enumerate(self._free):
            for i, (start, end) in enumerate(free):
                if end - start >= size:
                    if end - start == size:
                        del free[i]
                    else:
                        free[i] = (start + size, end)
                    self._leased += size
                    self.peak_leased = max(self.peak_leased, self._leased)
                    return Lease(self, b, start, size, self._blocks[b][start:start + size])
        return None

    def _give_back(self, lease: Lease, after) -> None:
        with self._cv:
            if lease.released:
                return
            lease.released = True
            if after is not None:
                self._pending.append((after, lease))
            else:
                self._free_range(lease)
            self._cv.notify_all()

    def _free_range(self, lease: Lease) -> None:
        if lease.block >= len(self._free) or self._blocks[lease.block].data_ptr() != \
                lease.tensor.data_ptr() - lease.start:
            self._leased -= lease.size  # its block was replaced meanwhile
            return
        free = self._free[lease.block]
        free.append((lease.start, lease.start + lease.size))
        free.sort()
        merged = [free[0]]
        for s, e in free[1:]:
            if s == merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        self._free[lease.block] = merged
        self._leased -= lease.size

    def _reclaim(self, block_on_oldest: bool) -> None:
        """Frees the ranges whose events have completed (first waiting for the
        oldest one, if asked). REQUIRES: self._cv held; it is released while waiting."""
        if block_on_oldest and self._pending:
            event, lease = self._pending.pop(0)  # taken out first: no other thread frees it too
            self._cv.release()
            try:
                event.synchronize()
            finally:
                self._cv.acquire()
            self._free_range(lease)
        keep = []
        for event, lease in self._pending:
            if event.query():
                self._free_range(lease)
            else:
                keep.append((event, lease))
        self._pending = keep

    def wait_idle(self, timeout: float | None = None) -> None:
        """Waits until nothing is leased; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                self._reclaim(block_on_oldest=bool(self._pending))
                if self._leased == 0 and not self._pending:
                    return
                self._wait(deadline, lambda: f"still {self._leased} bytes leased after {timeout} s "
                                             "(the previous save has not written its state)")

    def _wait(self, deadline: float | None, why) -> None:
        """Waits on the condition until notified or `deadline`; past it, TimeoutError(why()).
        REQUIRES: self._cv held."""
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(f"staging arena '{self.name}': {why()}")
        self._cv.wait(left)

    def drain(self) -> None:
        """Waits for every pending host-to-device copy and frees its range."""
        with self._cv:
            while self._pending:
                self._reclaim(block_on_oldest=True)
            self._cv.notify_all()


# Tests only (CI has no GPU): stage CPU tensors too, as device tensors are,
# so that the staged paths run without CUDA.
stage_host_tensors = False

SAVE = Arena("save", SAVE_BYTES)
LOAD = Arena("load", LOAD_BYTES)
ASYNC = Arena("async", None, shared=True)


def _after_fork_in_child() -> None:
    for arena in (SAVE, LOAD, ASYNC):
        arena._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SaveStaging:
    """Stages the device tensors of one synchronous save through SAVE. The
    copies are queued on the stream that was current when it was created
    (the caller's), each one waited for by the worker thread that asked."""

    def __init__(self, arena: Arena | None = None):
        self.arena = arena or SAVE
        self.leases: list[Lease] = []
        self._lock = threading.Lock()
        # The caller's stream, if CUDA is running (a state with CUDA tensors has
        # started it; never start it here: a forked child could not).
        self.stream = torch.cuda.current_stream() if torch.cuda.is_initialized() else None

    def entry(self, name: str, t: torch.Tensor, global_shape, offsets, replica_index: int = 0,
              replica_count: int = 1) -> _core.StagedDesc:
        """The staged entry of device tensor `t` (kept alive by the entry)."""
        holder: dict = {}

        def acquire():
            lease = self.arena.take(t.nbytes)
            with self._lock:
                self.leases.append(lease)
            holder["lease"] = lease
            host = lease.view(t.dtype, t.shape)
            if not t.is_cuda:
                host.copy_(t)
            else:
                with torch.cuda.device(t.device), torch.cuda.stream(self._stream_for(t)):
                    host.copy_(t, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                event.synchronize()
            return host.data_ptr()

        def release(_cast: bool):
            lease = holder.pop("lease", None)
            if lease is not None:
                lease.release()

        return _core.StagedDesc(name=name, dtype=dtype_name(t.dtype), elem_size=t.element_size(),
                                sizes=list(t.shape), global_shape=None if global_shape is None else list(global_shape),
                                offsets=None if offsets is None else list(offsets),
                                replica_index=int(replica_index), replica_count=int(replica_count),
                                acquire=acquire, release=release)

    def _stream_for(self, t: torch.Tensor):
        if self.stream is not None and self.stream.device == t.device:
            return self.stream
        return torch.cuda.current_stream(t.device)

    def close(self) -> None:
        """Returns every lease still held (after a failed save, or hooks not called)."""
        with self._lock:
            leases, self.leases = self.leases, []
        for lease in leases:
            lease.release()


class LoadStaging:
    """Lands device targets of a load in LOAD, wave by wave: the bytes of an
    entry (in the saved dtype) land in a lease, then one non-blocking copy
    moves them to the target (converting the dtype if it differs); the lease
    returns to the arena when that copy has run."""

    def __init__(self, arena: Arena | None = None):
        self.arena = arena or LOAD
        self.wave_bytes = max((self.arena.bound or LOAD_BYTES) // 2, ALIGN)

    def entry(self, name: str, target: torch.Tensor, saved_dtype: torch.dtype, global_shape,
              offsets) -> _core.StagedDesc:
        """The staged entry filling device tensor `target`."""
        holder: dict = {}

        def acquire():
            lease = self.arena.take(target.numel() * saved_dtype.itemsize)
            holder["lease"] = lease
            holder["host"] = lease.view(saved_dtype, target.shape)
            return holder["host"].data_ptr()

        def release(_cast: bool):
            lease, host = holder.pop("lease"), holder.pop("host")
            if not target.is_cuda:
                with torch.no_grad():
                    target.copy_(host)
                lease.release()
            else:
                with torch.no_grad(), torch.cuda.device(target.device):
                    target.copy_(host, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                lease.release(after=event)

        return _core.StagedDesc(name=name, dtype=dtype_name(saved_dtype), elem_size=saved_dtype.itemsize,
                                sizes=list(target.shape),
                                global_shape=None if global_shape is None else list(global_shape),
                                offsets=None if offsets is None else list(offsets), acquire=acquire, release=release)

    def finish(self) -> None:
        """Waits until every queued copy has run (the targets hold the loaded
        values): each one's lease is pending in the arena until then."""
        self.arena.drain()


class StagedStateDict(dict):
    """A state dict whose tensors are copies in ASYNC (see stage_state_dict).
    Its leases return to the arena by release(), or when it is dropped."""

    def release(self) -> None:
        self._release()  # set by stage_state_dict

    def __reduce__(self):
        # Pickled (DCP's process executor) as a plain dict. DTensors go as
        # (local tensor, spec): torch 2.11 crashes pickling a second DTensor
        # whose local tensor shares a storage (one arena block) with another.
        return (dict, (_picklable(dict(self)),))


class _DTensorParts:
    def __init__(self, local: torch.Tensor, spec):
        self.local, self.spec = local, spec

    def __reduce__(self):
        return (_rebuild_dtensor, (self.local, self.spec))


def _rebuild_dtensor(local: torch.Tensor, spec):
    return dtensor_from_parts(local, spec)


def _map_tensors(v, on_dtensor, on_tensor):
    """`v` (nested dicts, lists, tuples) with each DTensor and tensor replaced
    by what the functions make of it; other values as they are."""
    from torch.distributed.tensor import DTensor
    if isinstance(v, DTensor):
        return on_dtensor(v)
    if isinstance(v, torch.Tensor):
        return on_tensor(v)
    if isinstance(v, dict):
        return {k: _map_tensors(x, on_dtensor, on_tensor) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_map_tensors(x, on_dtensor, on_tensor) for x in v)
    return v


def _picklable(v):
    return _map_tensors(v, lambda d: _DTensorParts(*dtensor_parts(d)), lambda t: t)


def refuse_quantized(name: str, t: torch.Tensor) -> None:
    if t.is_quantized:  # its scale and zero point would be lost
        raise _core.InvalidArgument(f"tensor '{name}': quantized tensors ({t.dtype}) are not supported")


def readable(name: str, t: torch.Tensor) -> torch.Tensor:
    """`t` detached, with its conjugate/negative bits resolved; a dense (strided) tensor or an error naming it."""
    refuse_quantized(name, t)
    if t.layout != torch.strided:
        raise _core.InvalidArgument(f"tensor '{name}': layout {t.layout} is not supported (dense tensors only)")
    t = t.detach()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    return t


def stage_state_dict(state_dict: dict, arena: Arena | None = None, timeout: float | None = None) -> StagedStateDict:
    """A copy of `state_dict` (nested dicts and lists; tensors, DTensors and
    other values) whose tensors live in `arena`: every tensor is copied with
    one non-blocking copy on its device's current stream, then one wait per
    device, so the call costs about the device-to-host copy. Values other
    than tensors are shared, not copied. The arena is reused across calls:
    only memory beyond the largest state staged so far is pinned anew.

    Waits first until the previous staged state dict of `arena` has been
    released (its save has written it), so one state's worth is staged at a
    time; raises TimeoutError after `timeout` seconds."""
    arena = arena or ASYNC
    arena.wait_idle(timeout)
    leases: list[Lease] = []
    devices: set = set()  # CUDA devices copied from: one wait on each at the end

    def stage(t: torch.Tensor) -> torch.Tensor:
        t = readable("(staged)", t)
        lease = arena.take(t.nbytes)
        leases.append(lease)
        host = lease.view(t.dtype, t.shape)
        if t.is_cuda:
            with torch.cuda.device(t.device):
                host.copy_(t, non_blocking=True)
            devices.add(t.device)
        else:
            host.copy_(t)
        return host

    try:
        staged = StagedStateDict(_map_tensors(
            state_dict, lambda d: _staged_dtensor(d, stage), stage))
        for device in devices:
            torch.cuda.current_stream(device).synchronize()
    except BaseException:
        for lease in leases:
            lease.release()
        raise

    def release(leases=leases):
        while leases:
            leases.pop().release()

    staged._release = release
    weakref.finalize(staged, release)
    return staged


def _staged_dtensor(d, stage):
    local, spec = dtensor_parts(d)
    return dtensor_from_parts(stage(local), spec)


def save_entry(name: str, t: torch.Tensor, staging: SaveStaging, keep: list, global_shape=None, offsets=None,
               replica_index: int = 0, replica_count: int = 1) -> _core.TensorDesc | _core.StagedDesc:
    """The tessera._core entry that saves tensor `t`: a CUDA tensor is staged
    through `staging` when its bytes are needed; a CPU tensor is described in
    place. Tensors the entry points into are appended to `keep` (keep it alive
    for the call)."""
    t = readable(name, t)
    if t.device.type not in ("cpu", "cuda"):
        t = t.to("cpu")
    keep.append(t)
    if t.is_cuda or stage_host_tensors:
        return staging.entry(name, t, global_shape, offsets, replica_index, replica_count)
    return tensor_entry(name, t, global_shape, offsets, replica_index, replica_count)
