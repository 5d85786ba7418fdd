"""A small runner for the Python test scripts (run by `meson test`).

Each script defines test_* functions and ends with `harness.main(globals())`.
Multi-rank tests call run_ranks(fn, world, ...): `world` processes on this
host, each in a Gloo process group over a free TCP port, run fn(rank, world,
...). The runner prints one line per test and a closing summary

    [python] test cases: N | P passed | F failed

that scripts/count_tests.py adds to the doctest counts.
"""
from __future__ import annotations

import datetime
import shutil
import socket
import sys
import tempfile
import time
import traceback

import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, fn, world, port, args, gpus=False):
    import torch
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
    """Runs fn(rank, world, *args) in `world` processes; raises if any fails.
    Forked (fast) unless this process has started CUDA (pinned staging does,
    on a GPU machine), which a forked child could not use: then spawned."""
    import torch
    method = "spawn" if torch.cuda.is_initialized() else "fork"
    mp.start_processes(_rank_main, args=(fn, world, free_port(), args), nprocs=world, join=True,
                       start_method=method)


def run_gpu_ranks(fn, world: int, *args) -> None:
    """run_ranks with one GPU per rank (NCCL for CUDA tensors), in spawned processes."""
    mp.start_processes(_rank_main, args=(fn, world, free_port(), args, True), nprocs=world, join=True,
                       start_method="spawn")


def tmpdir() -> str:
    d = tempfile.mkdtemp(prefix="tessera-py-")
    _dirs.append(d)
    return d


_dirs: list[str] = []


def expect_raises(exc_types, fn, *args, match: str | None = None, **kwargs):
    """Calls fn and checks that it raises one of exc_types whose message contains `match`."""
    try:
        fn(*args, **kwargs)
    except exc_types as e:
        if match is not None and match not in str(e):
            raise AssertionError(f"expected {match!r} in the error, got: {e}") from e
        return e
    raise AssertionError(f"expected {exc_types} from {getattr(fn, '__name__', fn)}")


def main(namespace: dict) -> None:
    only = sys.argv[1:]
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if only:
        tests = [(n, f) for n, f in tests if any(o in n for o in only)]
    passed = failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"PASS {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        except BaseException:
            failed += 1
            traceback.print_exc()
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        finally:
            while _dirs:
                shutil.rmtree(_dirs.pop(), ignore_errors=True)
    print(f"[python] test cases: {passed + failed} | {passed} passed | {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
