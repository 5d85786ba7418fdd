#!/usr/bin/env python3
"""DCP's FileSystemWriter/Reader against tessera's DCP backend (and the direct
API), on the same state in one run.

State: a Llama-like model's fp32 parameters plus Adam's exp_avg and
exp_avg_sq (3 x 4 bytes per parameter), ~N(0, 0.02^2) weights. It is saved
by SAVE_RANKS processes as Shard(0) DTensors (rows), then loaded twice by
LOAD_RANKS processes, each time after the checkpoint's files are evicted
from the page cache: as Shard(1) DTensors (columns) and as Shard(0) DTensors
(rows, cut differently than saved) — two resharding loads.

Per variant: save time (barrier to barrier), bytes on disk it added, load
time, bytes read on the resharding load (sum over ranks of /proc/self/io
rchar during the load: every byte read by read()/pread(), page cache or
not), and a check that every loaded byte equals the saved one.

    .venv/bin/python bench/py_dcp_bench.py [--dir /tmp] [--layers 2] [--save-ranks 2] [--load-ranks 3]

Needs the package importable: `pip install .` or PYTHONPATH=build/python.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))

from conftest import run_ranks  # noqa: E402  (the Python tests' Gloo launcher)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.distributed.checkpoint as dcp  # noqa: E402

import tessera  # noqa: E402
from tessera.dcp import StorageReader, StorageWriter  # noqa: E402


def shapes(layers: int) -> dict:
    h, m, v = 1024, 2816, 8192
    out = {"model.embed.weight": (v, h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        out.update({p + "q.weight": (h, h), p + "k.weight": (h, h), p + "v.weight": (h, h), p + "o.weight": (h, h),
                    p + "gate.weight": (m, h), p + "up.weight": (m, h), p + "down.weight": (h, m)})
    return out


def full(name: str, shape, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(hash((name, kind)) & 0x7FFFFFFF)
    x = torch.randn(shape, generator=g)
    return {"param": x * 0.02, "exp_avg": x * 1e-3, "exp_avg_sq": (x * 1e-3) ** 2}[kind]


def state(layers: int, dim: int, zeros: bool = False) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    sd = {"model": {}, "optim": {"step": 100}}
    for name, shape in shapes(layers).items():
        for kind in ("param", "exp_avg", "exp_avg_sq"):
            t = torch.zeros(shape) if zeros else full(name, shape, kind)
            key = name if kind == "param" else f"optim.{kind}.{name}"
            d = distribute_tensor(t, mesh, [Shard(dim)], src_data_rank=None)  # local slicing, no communication
            (sd["model"] if kind == "param" else sd["optim"])[key] = d
    return sd


def check(sd: dict, layers: int) -> None:
    for name in shapes(layers):
        for kind in ("param", "exp_avg", "exp_avg_sq"):
            d = sd["model"][name] if kind == "param" else sd["optim"][f"optim.{kind}.{name}"]
            from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
            shape, off = compute_local_shape_and_global_offset(d.shape, d.device_mesh, d.placements)
            want = full(name, tuple(d.shape), kind)[tuple(slice(o, o + s) for o, s in zip(off, shape))]
            if not torch.equal(d.to_local(), want):
                raise SystemExit(f"bench: loaded {kind} of {name} differs from the saved one")


def rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def evict(path: str) -> None:
    """Drops the files under `path` from the page cache (both variants alike)."""
    for r, _, fs in os.walk(path):
        for f in fs:
            fd = os.open(os.path.join(r, f), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(fn) -> float:
    dist.barrier()
    t0 = time.perf_counter()
    fn()
    dist.barrier()
    return time.perf_counter() - t0


def _save(rank, world, variant, path, layers, out):
    sd = state(layers, 0)
    if variant == "dcp":
        t = timed(lambda: dcp.save(sd, storage_writer=dcp.FileSystemWriter(path)))
    elif variant.startswith("tessera-dcp"):
        comp = variant.rsplit("-", 1)[1]
        t = timed(lambda: dcp.save(sd, storage_writer=StorageWriter(path, "ckpt", compression=comp)))
    else:
        t = timed(lambda: tessera.save(sd, path, "ckpt"))
    if rank == 0:
        with open(out, "a") as f:
            f.write(json.dumps({"variant": variant, "phase": "save", "seconds": t}) + "\n")


def _load(rank, world, variant, path, layers, out, dim):
    sd = state(layers, dim, zeros=True)
    before = rchar()
    if variant == "dcp":
        t = timed(lambda: dcp.load(sd, storage_reader=dcp.FileSystemReader(path)))
    elif variant.startswith("tessera-dcp"):
        t = timed(lambda: dcp.load(sd, storage_reader=StorageReader(path, "ckpt")))
    else:
        t = timed(lambda: tessera.load(sd, path, "ckpt"))
    read = torch.tensor([rchar() - before], dtype=torch.int64)
    dist.all_reduce(read)
    check(sd, layers)
    if rank == 0:
        with open(out, "a") as f:
            f.write(json.dumps({"variant": variant, "phase": f"load{dim}", "seconds": t, "read": int(read)}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/tmp"))
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--save-ranks", type=int, default=2)
    p.add_argument("--load-ranks", type=int, default=3)
    p.add_argument("--variants", default="dcp,tessera-dcp-auto,tessera-dcp-none,tessera-direct")
    a = p.parse_args()
    logical = sum(3 * 4 * r * c for r, c in shapes(a.layers).values())
    scratch = tempfile.mkdtemp(prefix="py-dcp-bench-", dir=a.dir)
    out = os.path.join(scratch, "results.jsonl")
    rows = []
    try:
        for variant in a.variants.split(","):
            path = os.path.join(scratch, variant)
            run_ranks(_save, a.save_ranks, variant, path, a.layers, out)
            written = dir_bytes(path)
            row = [variant, written]
            for dim in (1, 0):
                evict(path)
                run_ranks(_load, a.load_ranks, variant, path, a.layers, out, dim)
            res = {(r["variant"], r["phase"]): r for r in map(json.loads, open(out))}
            rows.append((variant, res[variant, "save"]["seconds"], written,
                         res[variant, "load1"]["seconds"], res[variant, "load1"]["read"],
                         res[variant, "load0"]["seconds"], res[variant, "load0"]["read"]))
            shutil.rmtree(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    mib = 1 << 20
    print(f"state: {logical / mib:.0f} MiB ({len(shapes(a.layers))} tensors x param/exp_avg/exp_avg_sq, fp32); "
          f"save {a.save_ranks} ranks Shard(0), load {a.load_ranks} ranks; torch {torch.__version__}")
    print("columns: Shard(1) load; rows: Shard(0) load; ratios: variant / dcp, same run")
    head = ["save s", "written MiB", "cols s", "cols read MiB", "rows s", "rows read MiB"]
    print(f"{'variant':<18}" + "".join(f"{h:>15}" for h in head))
    base = rows[0] if rows[0][0] == "dcp" else None
    for r in rows:
        vals = [r[1], r[2] / mib, r[3], r[4] / mib, r[5], r[6] / mib]
        line = f"{r[0]:<18}" + "".join(f"{v:15.2f}" for v in vals)
        if base and r is not base:
            line += "\n" + f"{'  (/ dcp)':<18}" + "".join(f"{x / y:15.2f}" for x, y in zip(r[1:], base[1:]))
        print(line)

if __name__ == "__main__":
    main()
