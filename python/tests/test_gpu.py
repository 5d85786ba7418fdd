"""The GPU paths of the Python package, on as many GPUs as the machine has
(up to 4; NCCL between them): pinned staging of CUDA tensors in saves,
async saves that keep the values at the call, staged loads into CUDA
tensors, replicated boxes read once and sent over NCCL, and a failing rank
in such a load. Skipped (0 test cases) on machines without CUDA, as in CI;
run on the device machine."""
from __future__ import annotations

import time

import pytest
import states
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

import tessera
from tessera import _replicated, _staging
from tessera.dcp import StorageReader, StorageWriter

MiB = 1 << 20


def _state(mesh, rank: int, salt: int = 0, zeros: bool = False) -> dict:
    """Row-sharded DTensors (bf16 and fp32) and replicated plain tensors, on this rank's GPU."""
    from torch.distributed.tensor import Shard, distribute_tensor
    dev = torch.device("cuda", torch.cuda.current_device())
    out = {}
    for i, (shape, dtype) in enumerate([((4096, 1024), torch.bfloat16), ((2048, 1536), torch.float32)]):
        full = states.full(f"s{i}", shape, dtype, salt)
        out[f"sharded.{i}"] = distribute_tensor(torch.zeros_like(full) if zeros else full, mesh, [Shard(0)])
    for i, (shape, dtype) in enumerate([((1024, 1024), torch.float32), ((3000, 700), torch.bfloat16)]):
        full = states.full(f"r{i}", shape, dtype, salt).to(dev)
        out[f"replicated.{i}"] = torch.zeros_like(full) if zeros else full
    out["step"] = 0 if zeros else 100 + salt
    return out


def _check(sd: dict, salt: int, what: str) -> None:
    want = _state(sd["_mesh"], 0, salt) if "_mesh" in sd else None
    for k, v in sd.items():
        if k.startswith("_") or k == "step":
            continue
        got = v.full_tensor() if hasattr(v, "full_tensor") else v
        w = want[k].full_tensor() if hasattr(want[k], "full_tensor") else want[k]
        assert got.is_cuda and torch.equal(got, w), f"{what}: tensor '{k}' differs"
    assert sd["step"] == 100 + salt, (what, sd["step"])


def _gpu_paths(rank, world, store):
    from torch.distributed.device_mesh import init_device_mesh
    mesh = init_device_mesh("cuda", (world,))
    sd = _state(mesh, rank)

    # Synchronous save: CUDA tensors through the pinned SAVE arena.
    tessera.save(sd, store, "sync")
    assert _staging.SAVE.pinned and _staging.SAVE.leased == 0
    assert _staging.SAVE.peak_leased <= _staging.SAVE_BYTES
    got = _state(mesh, rank, zeros=True)
    res = tessera.load(got, store, "sync")
    got["_mesh"] = mesh
    _check(got, 0, "tessera.save/load")

    # Replicated tensors read once: over the ranks, one copy of them plus the shards.
    total = torch.tensor([res.bytes_read], device="cuda")
    dist.all_reduce(total)
    logical = sum(t.numel() * t.element_size() for k, t in sd.items() if k.startswith(("sharded", "replicated"))
                  for t in [t.full_tensor() if hasattr(t, "full_tensor") else t])
    stored = sum(e.stored_bytes for e in tessera.describe(tessera.Store(store, read_only=True), "sync"))
    assert int(total) <= 1.05 * stored + 64 * 1024, (int(total), stored, logical)

    # Async save: the call blocks for the copy only; later writes do not reach the checkpoint.
    for i in range(2):
        sd = _state(mesh, rank, salt=i + 1)
        t0 = time.monotonic()
        fut = tessera.async_save(sd, store, f"async-{i}")
        blocked = time.monotonic() - t0
        for k, v in sd.items():
            if k != "step":
                (v.to_local() if hasattr(v, "to_local") else v).fill_(-1)
        fut.result()
        if rank == 0:
            print(f"tessera.async_save {i}: blocked {blocked:.3f} s", flush=True)
    assert _staging.ASYNC.pinned and _staging.ASYNC.leased == 0
    for i in range(2):
        got = _state(mesh, rank, zeros=True)
        tessera.load(got, store, f"async-{i}")
        got["_mesh"] = mesh
        _check(got, i + 1, f"tessera.async_save {i}")

    # DCP: save, async_save (this writer as the stager), load with read-once over NCCL.
    sd = _state(mesh, rank, salt=7)
    dcp.save(sd, storage_writer=StorageWriter(store, "dcp"))
    blocks = None
    for i in range(2):
        sd = _state(mesh, rank, salt=8 + i)
        t0 = time.monotonic()
        fut = dcp.async_save(sd, storage_writer=StorageWriter(store, f"dcp-async-{i}"))
        blocked = time.monotonic() - t0
        for k, v in sd.items():
            if k != "step":
                (v.to_local() if hasattr(v, "to_local") else v).fill_(-1)
        fut.result()
        if blocks is not None:
            assert _staging.ASYNC.blocks_added == blocks, "the second dcp.async_save pinned new staging"
        blocks = _staging.ASYNC.blocks_added
        if rank == 0:
            print(f"dcp.async_save {i}: blocked {blocked:.3f} s", flush=True)
    for name, salt in (("dcp", 7), ("dcp-async-0", 8), ("dcp-async-1", 9)):
        got = _state(mesh, rank, zeros=True)
        reader = StorageReader(store, name)
        dcp.load(got, storage_reader=reader)
        got["_mesh"] = mesh
        _check(got, salt, f"dcp {name}")
        total = torch.tensor([reader.bytes_read], device="cuda")
        dist.all_reduce(total)
        stored = sum(e.stored_bytes for e in tessera.describe(tessera.Store(store, read_only=True), name))
        assert int(total) <= 1.05 * stored + 64 * 1024, (name, int(total), stored)

    # A rank whose reads fail makes every rank raise, over NCCL too.
    if rank == world - 1:
        def broken(*args, **kwargs):
            raise tessera.CorruptionError(f"injected on rank {rank}")
        _replicated.read_boxes = broken
    got = _state(mesh, rank, zeros=True)
    with pytest.raises(tessera.Error) as raised:
        tessera.load(got, store, "sync")
    e = raised.value
    assert ("injected" in str(e)) if rank == world - 1 else (f"rank(s) {world - 1}" in str(e)), str(e)


def test_gpu_staging_async_and_read_once(store, gpu_ranks):
    gpu_ranks(_gpu_paths, min(4, torch.cuda.device_count()), store)

