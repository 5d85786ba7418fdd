"""Reading replicated boxes once: when several ranks need the same box of a
saved tensor (data-parallel replicas, HSDP, every rank loading the whole
model), the box's rows are split among those ranks at chunk edges, each
rank reads its rows from storage, and the rows travel to the other ranks
that need them over the process group (point-to-point: NCCL for CUDA, Gloo
on CPU-only jobs). Storage then serves each byte once per job instead of
once per replica. Readers are balanced by the stored (compressed) bytes
they fetch.

    plan = plan_read_once(boxes_of_every_rank, describe_of_checkpoint)   # same on every rank
    read_once(store, ckpt, my_boxes, plan, rank, saved_dtypes, group)    # collective

plan_read_once is deterministic: DCP's coordinator computes it from every
rank's load plan (StorageReader.prepare_global_plan); tessera.load computes
it on every rank after one all_gather_object of the ranks' boxes.

read_once is a collective over `group`, in three steps:
  1. every rank reads its own boxes and its rows of the shared ones (no
     communication), catching any failure;
  2. one all_gather of "ok" flags (or the kind of a rank's failure): if any
     rank failed, every rank raises the same tessera.Error subclass (the
     failing rank its own error, the others one naming it; _dist.py) before
     a single transfer is posted, so nothing hangs;
  3. one batch of sends and receives moves every shared row range from its
     reader to the other ranks that need it.
Boxes smaller than MIN_SHARED_BYTES are read by every rank that needs them
(a transfer costs more than the read).
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.distributed as dist

from . import _core, _dist
from ._reading import Box, read_boxes

MIN_SHARED_BYTES = 1 << 20

# A box as every rank names it: (tensor name, start, lengths) in global coordinates.
Key = tuple


def box_key(name: str, offsets, lengths) -> Key:
    return (name, tuple(int(x) for x in offsets), tuple(int(x) for x in lengths))


@dataclasses.dataclass(frozen=True)
class Part:
    rows: tuple       # (begin, end): global dimension-0 rows (0-D tensors: (0, 1))
    reader: int       # the rank that reads them from storage


@dataclasses.dataclass
class ReadOncePlan:
    """Which rank reads which rows of each shared box. Keys are box_key()s;
    `needers[key]` lists the ranks that need the box (sorted)."""
    parts: dict = dataclasses.field(default_factory=dict)    # key -> [Part]
    needers: dict = dataclasses.field(default_factory=dict)  # key -> [rank]


def plan_read_once(boxes_by_rank: list[list[Key]], entries: dict[str, _core.EntryInfo]) -> ReadOncePlan:
    """The read-once plan for a job whose rank r needs boxes_by_rank[r].
    `entries` maps tensor names to tessera._core.describe() entries (dtype,
    row_starts, stored and logical bytes). Deterministic: every rank computes
    the same plan. The rows and readers are the C++ rule's
    (_core.plan_replica_reads: cuts at chunk edges, readers balanced by the
    stored bytes they fetch), the one the C++ replicated load uses."""
    plan = ReadOncePlan()
    needers: dict[Key, list[int]] = {}
    for rank, keys in enumerate(boxes_by_rank):
        for k in keys:
            needers.setdefault(k, [])
            if not needers[k] or needers[k][-1] != rank:
                needers[k].append(rank)
    shared, boxes = [], []  # the boxes read once, and how the rule sees them
    for key in sorted(needers):
        ranks = needers[key]
        name, start, lengths = key
        info = entries.get(name)
        if len(ranks) < 2 or info is None:
            continue
        nbytes = math.prod(lengths) * getattr(torch, info.dtype).itemsize
        if nbytes < MIN_SHARED_BYTES:
            continue
        begin, end = (start[0], start[0] + lengths[0]) if lengths else (0, 1)
        shared.append(key)
        boxes.append((begin, end, ranks, nbytes, info))
    for key, parts in zip(shared, _core.plan_replica_reads(boxes, len(boxes_by_rank))):
        plan.parts[key] = [Part((a, b), reader) for a, b, reader in parts]
        plan.needers[key] = needers[key]
    return plan


def _rows(t: torch.Tensor, start0: int, rows: tuple) -> torch.Tensor:
    """The rows [rows) (global) of box tensor `t` that starts at global row start0."""
    if t.dim() == 0:
        return t
    return t.narrow(0, rows[0] - start0, rows[1] - rows[0])


def _transfer_device() -> torch.device:
    """CUDA when the default group can move CUDA tensors (NCCL), else CPU."""
    backend = str(dist.get_backend())
    if "nccl" in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def read_once(store: _core.Store, checkpoint: str, boxes: list[tuple[Key, Box]], plan: ReadOncePlan, rank: int,
              saved_dtypes: dict[str, torch.dtype], *, verify: bool = True, threads: int = 0,
              group=None, failure: BaseException | None = None, progress=None) -> dict:
    """Collective over `group` (default: the default group; its ranks must be
    the plan's ranks): fills every box in `boxes` (this rank's, keyed by
    box_key). Returns this rank's read statistics. `failure`: this rank
    failed before the call; it takes part only to make every rank raise."""
    device = _transfer_device()
    reads: list[Box] = []
    transfers = []  # (key, part, buffer): rows this rank sends or receives, in plan order
    to_send, received = [], []  # (dest rows, buffer) where the buffer is not the destination itself
    stats = {"bytes_read": 0, "chunks_read": 0, "missing_keys": []}
    try:
        if failure is not None:
            raise failure
        mine = {}
        for key, box in boxes:
            if key in plan.parts and key not in mine:
                mine[key] = box
            else:  # not shared, or a second destination of the same box on this rank
                reads.append(box)
        for key in sorted(mine):
            box = mine[key]
            start0 = box.offsets[0] if box.offsets else 0
            saved = saved_dtypes.get(box.name, box.dest.dtype)
            for part in plan.parts[key]:
                dest = _rows(box.dest, start0, part.rows)
                direct = (dest.device == device and dest.dtype == saved and dest.is_contiguous())
                buf = dest if direct else torch.empty(dest.shape, dtype=saved, device=device)
                if part.reader == rank:
                    offsets = list(box.offsets)
                    if offsets:
                        offsets[0] = part.rows[0]
                    reads.append(Box(box.name, dest, box.global_shape, offsets))
                if not direct:
                    (to_send if part.reader == rank else received).append((dest, buf))
                transfers.append((key, part, buf))
        t0 = time.perf_counter()
        stats = read_boxes(store, checkpoint, reads, saved_dtypes, verify=verify, threads=threads, progress=progress)
        stats["read_seconds"] = time.perf_counter() - t0
        with torch.no_grad():
            for dest, buf in to_send:
                buf.copy_(dest)
    except BaseException as e:  # held until every rank knows (raising now would leave the others waiting)
        failure = e

    # 2. Agree on success: -1, or the kind of this rank's failure (raised as its class on every rank).
    world = dist.get_world_size(group)
    flags = torch.tensor([_dist.error_kind(failure) if failure is not None else -1], dtype=torch.int64,
                         device=device)
    gathered = [torch.empty_like(flags) for _ in range(world)]
    dist.all_gather(gathered, flags, group=group)
    kinds = [k if k >= 0 else None for k in (int(f.item()) for f in gathered)]
    _dist.raise_together(f"load of checkpoint '{checkpoint}'", rank, kinds, failure)

    # 3. Move the shared rows from their readers to the other ranks that need them.
    t0 = time.perf_counter()
    # Boxes every rank needs go by broadcast (rings over all links: far faster
    # than many point-to-point sends over NCCL), the others point to point.
    # Every rank posts its broadcasts in the same (plan) order.
    ops, works = [], []
    for key, part, buf in transfers:
        t = buf.reshape(1) if buf.dim() == 0 else buf
        if len(plan.needers[key]) == world:
            works.append(dist.broadcast(t, src=part.reader, group=group, async_op=True))
        elif part.reader == rank:
            for peer in plan.needers[key]:
                if peer != rank:
                    ops.append(dist.P2POp(dist.isend, t, peer, group))
        else:
            ops.append(dist.P2POp(dist.irecv, t, part.reader, group))
    transfers_posted = len(works) + len(ops)
    if ops:
        works += dist.batch_isend_irecv(ops)
    for w in works:
        w.wait()
    with torch.no_grad():
        for dest, buf in received:
            dest.copy_(buf)
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    stats["exchange_seconds"] = time.perf_counter() - t0
    stats["transfers"] = transfers_posted
    return stats
