"""Staging (tessera._staging) and replicated reads (tessera._replicated) on
CPU: the staged paths that CUDA tensors take are forced for CPU tensors
(_staging.stage_host_tensors), so they run without a GPU. test_gpu.py runs
the same paths on real devices."""
from __future__ import annotations

import contextlib
import os
import re
import threading

import pytest
import states
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

import tessera
from tessera import _replicated, _staging
from tessera.dcp import StorageReader, StorageWriter

MiB = 1 << 20


def _big_state(n: int = 12, rows: int = 256, cols: int = 1024, salt: int = 0) -> dict:
    """n float32 tensors of rows x cols (1 MiB each by default)."""
    return {f"w{i:02d}": states.full(f"w{i}", (rows, cols), torch.float32, salt) for i in range(n)}


class _FakeEvent:
    """A CUDA event stand-in: completes when set."""

    def __init__(self):
        self.done = threading.Event()
        self.waited = False

    def query(self):
        return self.done.is_set()

    def synchronize(self):
        self.waited = True
        self.done.wait()


def test_arena_bounds_reuses_and_defers_release():
    a = _staging.Arena("t", bound=4 * MiB, block_bytes=1 * MiB)
    x = a.take(3 * MiB)                       # one 4 MiB block (power of two)
    assert a.capacity == 4 * MiB and a.blocks_added == 1
    with pytest.raises(TimeoutError, match=re.escape("'t'")):
        a.take(2 * MiB, timeout=0.2)  # full, bounded
    y = a.take(MiB)                           # the rest of the block
    x.release()
    z = a.take(2 * MiB)                       # reuses the freed range: no new block
    assert a.blocks_added == 1 and a.capacity == 4 * MiB
    ev = _FakeEvent()
    z.release(after=ev)                       # a copy still reads from z
    y.release()
    threading.Timer(0.2, ev.done.set).start()
    w = a.take(4 * MiB)                       # needs z's range: waits for its event
    assert ev.waited and a.blocks_added == 1 and a.peak_leased == 4 * MiB
    w.release()
    big = a.take(16 * MiB)                    # larger than the bound: one block of its own once nothing is leased
    assert big.size >= 16 * MiB
    big.release()


@contextlib.contextmanager
def _staged_through(which: str, arena: _staging.Arena):
    """CPU tensors staged as CUDA tensors are, through `arena` as _staging.SAVE or LOAD."""
    old = getattr(_staging, which)
    setattr(_staging, which, arena)
    _staging.stage_host_tensors = True
    try:
        yield arena
    finally:
        setattr(_staging, which, old)
        _staging.stage_host_tensors = False


def test_pipelined_save_stays_within_the_bound_and_keeps_call_time_values(store):
    with _staged_through("SAVE", _staging.Arena("save-test", bound=4 * MiB, block_bytes=1 * MiB)) as arena:
        sd = _big_state()                     # 12 MiB through a 4 MiB arena
        want = {k: v.clone() for k, v in sd.items()}
        arena.take(4 * MiB).release()         # the whole bound as one block, so reuse is all there is
        assert arena.blocks_added == 1
        tessera.save(sd, store, "a", chunk_bytes=256 * 1024, threads=4)
        assert arena.peak_leased <= 4 * MiB and arena.capacity <= 4 * MiB, (arena.peak_leased, arena.capacity)
        assert arena.leased == 0              # every entry released its staging
        tessera.save(sd, store, "b", chunk_bytes=256 * 1024, threads=4)
        assert arena.blocks_added == 1        # both saves ran in the same memory
        got = {k: torch.zeros_like(v) for k, v in sd.items()}
        tessera.load(got, store, "a")
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_failing_staging_copy_fails_the_save_naming_the_tensor(store):
    class Broken(_staging.Arena):
        def take(self, nbytes, timeout=None):
            raise RuntimeError("pinned memory exhausted")
    with _staged_through("SAVE", Broken("broken", bound=MiB)):
        with pytest.raises(tessera.Error, match=re.escape("tensor 'w00': staging")):
            tessera.save({"w00": torch.ones(4)}, store, "a")
    assert tessera.Store(store).checkpoints() == []


def test_staged_load_in_waves_is_bit_exact(store):
    sd = _big_state(n=6)
    sd["half"] = states.full("half", (512, 300), torch.bfloat16)
    tessera.save(sd, store, "a", chunk_bytes=100 * 1024)
    with _staged_through("LOAD", _staging.Arena("load-test", bound=2 * MiB, block_bytes=256 * 1024)) as arena:
        got = {k: torch.zeros_like(v) for k, v in sd.items()}
        got["w00"] = got["w00"].t().contiguous().t()  # a strided destination
        res = tessera.load(got, store, "a")
        assert all(torch.equal(got[k], sd[k]) for k in sd), "loaded values differ"
        assert arena.peak_leased <= 2 * MiB and arena.leased == 0
        assert res.bytes_read > 0


def test_async_save_keeps_values_at_the_call(store):
    sd = _big_state(n=4)
    want = {k: v.clone() for k, v in sd.items()}
    fut = tessera.async_save(sd, store, "a")
    for v in sd.values():                     # scribble at once: the save must not see it
        v.fill_(7.0)
    blocks = _staging.ASYNC.blocks_added
    fut.result()
    fut = tessera.async_save(sd, store, "b")  # the second reuses the async arena
    fut.result()
    assert _staging.ASYNC.blocks_added == blocks and _staging.ASYNC.leased == 0
    got = {k: torch.zeros_like(v) for k, v in sd.items()}
    tessera.load(got, store, "a")
    assert all(torch.equal(got[k], want[k]) for k in want), "async save saw a later write"
    tessera.load(got, store, "b")
    assert all(bool((got[k] == 7.0).all()) for k in want)


def test_async_save_error_stays_with_its_future(store):
    tessera.save({"w": torch.ones(3)}, store, "a")
    fut = tessera.async_save({"w": torch.ones(3)}, store, "a")  # the name is taken
    with pytest.raises(tessera.AlreadyExistsError, match=re.escape("'a'")):
        fut.result()
    assert _staging.ASYNC.leased == 0         # its staging came back anyway
    tessera.save({"w": torch.ones(3)}, store, "b")  # and the next save works


def _split_rows(begin: int, end: int, n: int, row_starts) -> list[tuple[int, int]]:
    """The row ranges of one box that n ranks need, by the C++ rule (_core.plan_replica_reads)."""
    saved = tessera._core.EntryInfo(row_starts=list(row_starts))
    return [(a, b) for a, b, _ in tessera._core.plan_replica_reads([(begin, end, list(range(n)), 0, saved)], n)[0]]


def test_split_rows_cut_at_chunk_edges():
    assert _split_rows(0, 100, 4, [0, 25, 50, 75]) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert _split_rows(0, 100, 4, [0, 40, 80]) == [(0, 40), (40, 80), (80, 100)]
    assert _split_rows(10, 20, 3, [0, 50]) == [(10, 20)]  # no edge inside: one reader


def test_read_once_plans_equal_those_of_the_python_rule_they_replaced():
    """Plans that _replicated.py's own rule (0.5.0, before it called
    _core.plan_replica_reads) made, computed once with that code."""
    def info(dtype, row_starts, stored, logical):
        return tessera._core.EntryInfo(dtype=dtype, row_starts=row_starts, stored_bytes=stored, logical_bytes=logical)

    entries = {
        "a": info("float32", [0, 256, 512, 768], 3 * MiB, 4 * MiB),
        "b": info("bfloat16", list(range(0, 1000, 100)), 2 * MiB, 2 * MiB),
        "c": info("float32", [0], MiB, 8 * MiB),
        "d": info("int64", [0, 1000, 2000, 3000], 0, 0),
        "e": info("float32", [0, 3], 4, 4),  # under MIN_SHARED_BYTES: every rank reads it
    }
    a, b, c = ("a", (0, 0), (1024, 1024)), ("b", (0, 0), (1000, 1024)), ("c", (0, 0), (2048, 1024))
    d, e = ("d", (1000, 0), (2000, 128)), ("e", (0,), (4,))
    plan = _replicated.plan_read_once([[a, b, c, e], [a, b, c, e, d, d], [a, b, c, e, d]], entries)
    got = {k: [(p.rows, p.reader) for p in parts] for k, parts in plan.parts.items()}
    assert got == {a: [((0, 256), 1), ((256, 768), 0), ((768, 1024), 2)],
                   b: [((0, 300), 2), ((300, 700), 1), ((700, 1000), 2)],
                   c: [((0, 2048), 0)],
                   d: [((1000, 2000), 1), ((2000, 3000), 2)]}
    assert plan.needers == {a: [0, 1, 2], b: [0, 1, 2], c: [0, 1, 2], d: [1, 2]}
    half = ("a", (512, 0), (512, 1024))
    plan = _replicated.plan_read_once([[half, c], [b, c], [b, c], [half, b, c]], entries)
    got = {k: [(p.rows, p.reader) for p in parts] for k, parts in plan.parts.items()}
    assert got == {half: [((512, 768), 0), ((768, 1024), 3)],
                   b: [((0, 300), 2), ((300, 700), 1), ((700, 1000), 2)],
                   c: [((0, 2048), 0)]}
    assert plan.needers == {half: [0, 3], b: [1, 2, 3], c: [0, 1, 2, 3]}


def _replicated_load(rank, world, store, bytes_out):
    w = _big_state(n=3, rows=512)             # 2 MiB each, every rank loads all of them
    tessera.save(w, store, "w", compression="none", chunk_bytes=256 * 1024, threads=2)  # a collective
    got = {k: torch.zeros_like(v) for k, v in w.items()}
    res = tessera.load(got, store, "w")
    assert all(torch.equal(got[k], w[k]) for k in w), "tessera.load: replicated boxes differ"
    r2 = StorageReader(store, "w")
    got2 = {k: torch.zeros_like(v) for k, v in w.items()}
    dcp.load(got2, storage_reader=r2)
    assert all(torch.equal(got2[k], w[k]) for k in w), "dcp.load: replicated boxes differ"
    r3 = StorageReader(store, "w", read_once=False)
    dcp.load({k: torch.zeros_like(v) for k, v in w.items()}, storage_reader=r3)
    with open(os.path.join(bytes_out, f"{rank}"), "w") as f:
        f.write(f"{res.bytes_read} {r2.bytes_read} {r3.bytes_read}")


def test_replicated_boxes_are_read_once_across_ranks(tmp_path, ranks):
    d = str(tmp_path)
    ranks(_replicated_load, 3, os.path.join(d, "store"), d)
    rows = [list(map(int, open(os.path.join(d, str(r))).read().split())) for r in range(3)]
    one_copy = 3 * 2 * MiB
    direct, via_dcp, each = (sum(r[i] for r in rows) for i in range(3))
    assert direct == one_copy, f"tessera.load read {direct} bytes over the ranks, one copy is {one_copy}"
    assert via_dcp == one_copy, f"dcp.load read {via_dcp} bytes over the ranks, one copy is {one_copy}"
    assert each == 3 * one_copy, each      # read_once=False: every rank reads everything
    assert all(r[0] > 0 for r in rows), "every rank should read its share"


def _hsdp_load(rank, world, store):
    """A 2 x 2 mesh: dim 0 replicates, dim 1 shards rows. Boxes are shared by pairs."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    mesh = init_device_mesh("cpu", (2, 2))
    full = states.full("h", (1024, 512), torch.float32)
    sd = {"h": distribute_tensor(full, mesh, [Replicate(), Shard(0)])}
    tessera.save(sd, store, "h", compression="none", chunk_bytes=128 * 1024)
    got = {"h": distribute_tensor(torch.zeros(1024, 512), mesh, [Replicate(), Shard(0)])}
    res = tessera.load(got, store, "h")
    assert torch.equal(got["h"].full_tensor(), full)
    total = torch.tensor([res.bytes_read])
    dist.all_reduce(total)
    assert int(total) == 1024 * 512 * 4, int(total)  # each byte once over the 4 ranks


def test_hsdp_boxes_shared_by_pairs_are_read_once(store, ranks):
    ranks(_hsdp_load, 4, store)


def _failing_rank(rank, world, store):
    w = _big_state(n=2, rows=512)
    tessera.save(w, store, "w", chunk_bytes=256 * 1024)
    if rank == 1:  # this rank's storage reads fail
        def broken(*args, **kwargs):
            raise tessera.CorruptionError("injected: pack unreadable on rank 1")
        _replicated.read_boxes = broken
    got = {k: torch.zeros_like(v) for k, v in w.items()}
    with pytest.raises(tessera.Error) as raised:
        tessera.load(got, store, "w")
    e = raised.value
    assert ("injected" in str(e)) if rank == 1 else ("rank(s) 1" in str(e)), str(e)
    from torch.distributed.checkpoint.api import CheckpointException  # DCP gathers every rank's error
    with pytest.raises(CheckpointException) as raised:
        dcp.load(got, storage_reader=StorageReader(store, "w"))
    e = raised.value
    assert "injected" in str(e) and "rank(s) 1 (this is rank" in str(e), str(e)


def test_a_rank_failing_in_a_replicated_load_fails_every_rank(store, ranks):
    ranks(_failing_rank, 3, store)


def _dcp_async_twice(rank, world, store):
    sd = states.state(states.mesh1d(), 0, salt=5)
    tessera.reserve_staging(sd)  # pins now: the first async save below pins nothing
    reserved = _staging.ASYNC.blocks_added
    assert reserved > 0 and _staging.ASYNC.leased == 0
    fut = dcp.async_save(sd, storage_writer=StorageWriter(store, "one"))
    for v in sd["model"].values():
        (v.to_local() if hasattr(v, "to_local") else v).zero_()  # scribble after the call returns
    fut.result()
    blocks = _staging.ASYNC.blocks_added
    assert blocks == reserved
    sd = states.state(states.mesh1d(), 0, salt=6)
    dcp.async_save(sd, storage_writer=StorageWriter(store, "two")).result()
    assert _staging.ASYNC.blocks_added == blocks, "the second async save pinned new staging"
    assert _staging.ASYNC.leased == 0
    for name, salt in (("one", 5), ("two", 6)):
        got = states.state(states.mesh1d(), 1, zeros=True)
        dcp.load(got, storage_reader=StorageReader(store, name))
        try:
            states.check_state(got, salt=salt)
        except AssertionError as e:
            raise AssertionError(f"checkpoint '{name}': {e}") from e


def test_dcp_async_save_stages_in_the_reused_arena_and_keeps_call_time_values(store, ranks):
    ranks(_dcp_async_twice, 2, store)

