"""Fixtures of the Python package's tests (pytest; `meson test` runs each
test file as one test, `python -m pytest FILE`).

- store: a path for a new store, under the test's tmp_path.
- ranks: ranks(fn, world, *args) runs fn(rank, world, *args) in `world`
  processes on this host, each in a Gloo process group over a free TCP port,
  and raises if any of them fails. Forked (fast) unless this process has
  started CUDA (pinned staging does, on a GPU machine), which a forked child
  could not use: then spawned (fn must then be importable by name).
- gpu_ranks: the same with one GPU per rank (NCCL for CUDA tensors, Gloo for
  CPU ones), in spawned processes; the test is skipped where fewer than 2
  CUDA devices are present (CI has none).

The package under test is the one on PYTHONPATH (meson: build/python).
"""
from __future__ import annotations

import datetime
import socket

import pytest
import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, fn, world, port, args, gpus=False):
    import torch.distributed as dist
    if gpus:  # one GPU per rank; CUDA tensors over NCCL, CPU tensors over Gloo
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(1)  # several ranks share a couple of cores
    dist.init_process_group("cpu:gloo,cuda:nccl" if gpus else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world, timeout=datetime.timedelta(seconds=180),
                            device_id=torch.device("cuda", rank) if gpus else None)
    try:
        fn(rank, world, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world: int, *args) -> None:
    """Runs fn(rank, world, *args) in `world` Gloo processes; raises if any fails."""
    method = "spawn" if torch.cuda.is_initialized() else "fork"
    mp.start_processes(_rank_main, args=(fn, world, free_port(), args), nprocs=world, join=True,
                       start_method=method)


def run_gpu_ranks(fn, world: int, *args) -> None:
    """run_ranks with one GPU per rank (NCCL for CUDA tensors), in spawned processes."""
    mp.start_processes(_rank_main, args=(fn, world, free_port(), args, True), nprocs=world, join=True,
                       start_method="spawn")


def gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.fixture
def store(tmp_path) -> str:
    """A path for a new store (nothing is created there)."""
    return str(tmp_path / "store")


@pytest.fixture
def ranks():
    return run_ranks


@pytest.fixture
def gpu_ranks():
    if gpus() < 2:
        pytest.skip(f"needs 2 or more CUDA devices ({gpus()} here)")
    return run_gpu_ranks
