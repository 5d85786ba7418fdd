#!/usr/bin/env python3
"""The seed scenario (issue 14): train a small transformers Llama with data
parallel x tensor parallel, save it through tessera's DCP backend and through
DCP's own FileSystemWriter, resume on another layout from each, and compare.

  1. Save run, mesh SAVE (default 4x2 = DP4 x TP2): tensor parallel on the
     "tp" sub-mesh by hand (q/k/v/gate/up ColwiseParallel, o/down
     RowwiseParallel), data parallel over "dp" (each dp rank takes its slice of
     a fixed global batch of 8 sequences; gradients averaged over the dp
     group). AdamW. Train --steps steps, save {"app": AppState(model, optim)}
     with tessera.dcp.StorageWriter and with DCP's FileSystemWriter, then train
     --steps more steps: the uninterrupted reference.
  2. Load run, mesh LOAD (default 2x4 = DP2 x TP4): a fresh model (another
     init seed) loads through tessera.dcp.StorageReader, a second fresh model
     (yet another seed) through DCP's FileSystemReader; every local tensor of
     model and optimizer state is compared bit for bit, and against the fresh
     init (it must have changed). Each then trains --steps steps.

One implementation for the CPU test (python/tests/test_seed_resume.py drives
save_run/load_run in forked Gloo ranks) and for GPUs through torchrun:

  torchrun --nproc_per_node=8 examples/seed_resume.py --device cuda \
      --save-mesh 4x2 --load-mesh 2x4 --dir /tmp/seed

Rank 0 prints one JSON line per result (losses; save/load seconds and bytes
on disk per backend; the comparison) and appends it to DIR/results.jsonl.
Timings are informational only. Exit status 1 if the loads differ or the
resumed losses do. --phase save|load runs one job of the two
(the load job reads the save job's reference losses from DIR).
Needs the package importable: `pip install .` or PYTHONPATH=build/python.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful

from tessera.dcp import StorageReader, StorageWriter

GLOBAL_BATCH = 8
SEQ_LEN = 16
VOCAB = 256
DATA_SEED = 1234
TRAIN_SEED = 0       # the save run's init
TESSERA_SEED = 1     # the fresh model that loads through tessera
DCP_SEED = 2         # the fresh model that loads through DCP's FileSystemReader
CHECKPOINT = "seed-step"


class AppState(Stateful):
    """DCP's recipe: model and optimizer state as one Stateful."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, sd):
        set_state_dict(self.model, self.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


def parse_mesh(text: str) -> tuple[int, int]:
    dp, tp = (int(x) for x in text.lower().split("x"))
    return dp, tp


def make_mesh(device: str, shape: tuple[int, int]):
    from torch.distributed.device_mesh import init_device_mesh
    assert shape[0] * shape[1] == dist.get_world_size(), f"mesh {shape} needs {shape[0] * shape[1]} ranks"
    return init_device_mesh(device, shape, mesh_dim_names=("dp", "tp"))


def build(mesh, device: str, seed: int):
    """A tiny Llama (same config for every layout: heads and kv heads divide by 4),
    tensor parallel on mesh["tp"], AdamW."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=64,
                      attn_implementation="eager")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(device)
    plan = {"self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
            "self_attn.v_proj": ColwiseParallel(), "self_attn.o_proj": RowwiseParallel(),
            "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(),
            "mlp.down_proj": RowwiseParallel()}
    for layer in model.model.layers:
        parallelize_module(layer, mesh["tp"], plan)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)
    return model, opt


def batch(step: int, mesh, device: str) -> torch.Tensor:
    """This dp rank's slice of the global batch of `step` (the same on every layout)."""
    g = torch.Generator().manual_seed(DATA_SEED * 1000 + step)
    ids = torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ_LEN), generator=g)
    dp, dp_rank = mesh["dp"].size(), mesh["dp"].get_local_rank()
    per = GLOBAL_BATCH // dp
    return ids[dp_rank * per:(dp_rank + 1) * per].to(device)


def train(model, opt, mesh, device: str, first_step: int, steps: int) -> list[float]:
    """`steps` steps from global step `first_step`; returns the global mean loss of each."""
    from torch.distributed.tensor import DTensor
    group, dp = mesh["dp"].get_group(), mesh["dp"].size()
    losses = []
    for step in range(first_step, first_step + steps):
        ids = batch(step, mesh, device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        for p in model.parameters():  # average gradients over dp (every dp rank has as many tokens)
            g = p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad
            dist.all_reduce(g, group=group)
            g.div_(dp)
        opt.step()
        opt.zero_grad(set_to_none=True)
        total = loss.detach().clone()
        dist.all_reduce(total, group=group)
        losses.append((total / dp).item())
    return losses


def leaves(obj, path=""):
    """(path, value) for every leaf of a nested state dict, in a fixed order."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from leaves(obj[k], f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def local_bytes(t: torch.Tensor) -> torch.Tensor:
    """The rank's local values as raw bytes (DTensor: its local shard), for bit-exact comparison."""
    from torch.distributed.tensor import DTensor
    if isinstance(t, DTensor):
        t = t.to_local()
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def snapshot(model, opt) -> dict:
    """path -> (dtype, shape, raw bytes) or plain value, of this rank's model + optimizer state."""
    msd, osd = get_state_dict(model, opt)  # also creates a fresh optimizer's state (zeros)
    out = {}
    for path, v in leaves({"model": msd, "optim": osd}):
        out[path] = (v.dtype, tuple(v.shape), local_bytes(v).clone()) if isinstance(v, torch.Tensor) else v
    return out


def same(a, b) -> bool:
    if isinstance(a, tuple) and len(a) == 3 and isinstance(a[2], torch.Tensor):
        return isinstance(b, tuple) and a[:2] == b[:2] and torch.equal(a[2], b[2])
    return a == b


def barrier(device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    dist.barrier()


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def paths(directory: str) -> tuple[str, str]:
    return os.path.join(directory, "tessera-store"), os.path.join(directory, "dcp-checkpoint")


def report(directory: str, record: dict) -> None:
    """Rank 0: one JSON line on stdout and in DIR/results.jsonl."""
    if dist.get_rank() != 0:
        return
    line = json.dumps(record)
    print(line, flush=True)
    with open(os.path.join(directory, "results.jsonl"), "a") as f:
        f.write(line + "\n")


def save_run(rank: int, world: int, directory: str, device: str = "cpu", mesh_shape=(4, 2), steps: int = 3):
    """Train `steps`, save through tessera and DCP, train `steps` more (the reference)."""
    store, dcp_dir = paths(directory)
    mesh = make_mesh(device, tuple(mesh_shape))
    model, opt = build(mesh, device, TRAIN_SEED)
    before = train(model, opt, mesh, device, 0, steps)
    layout = f"{mesh_shape[0]}x{mesh_shape[1]}"
    for backend in ("tessera", "dcp"):
        writer = StorageWriter(store, CHECKPOINT) if backend == "tessera" else dcp.FileSystemWriter(dcp_dir)
        barrier(device)
        t0 = time.perf_counter()
        dcp.save({"app": AppState(model, opt)}, storage_writer=writer)
        barrier(device)
        seconds = time.perf_counter() - t0
        report(directory, {"event": "save", "backend": backend, "mesh": layout, "world": world, "device": device,
                           "seconds": round(seconds, 4), "bytes": du(store if backend == "tessera" else dcp_dir)})
    after = train(model, opt, mesh, device, steps, steps)
    record = {"event": "reference", "mesh": layout, "world": world, "device": device, "steps": steps,
              "losses_before_save": before, "losses_after_save": after}
    report(directory, record)
    if rank == 0:
        with open(os.path.join(directory, "reference.json"), "w") as f:
            json.dump(record, f)


def load_run(rank: int, world: int, directory: str, device: str = "cpu", mesh_shape=(2, 4), steps: int = 3):
    """Fresh models on another layout load through tessera and through DCP; compare; train `steps` each."""
    store, dcp_dir = paths(directory)
    mesh = make_mesh(device, tuple(mesh_shape))
    layout = f"{mesh_shape[0]}x{mesh_shape[1]}"
    runs, fresh = {}, {}
    for backend, seed in (("tessera", TESSERA_SEED), ("dcp", DCP_SEED)):
        model, opt = build(mesh, device, seed)
        fresh[backend] = snapshot(model, opt)
        reader = StorageReader(store, CHECKPOINT) if backend == "tessera" else dcp.FileSystemReader(dcp_dir)
        barrier(device)
        t0 = time.perf_counter()
        dcp.load({"app": AppState(model, opt)}, storage_reader=reader)
        barrier(device)
        seconds = time.perf_counter() - t0
        report(directory, {"event": "load", "backend": backend, "mesh": layout, "world": world, "device": device,
                           "seconds": round(seconds, 4)})
        runs[backend] = (model, opt)

    # Bit-exact: every local tensor (model + optimizer) and every value, tessera vs DCP;
    # and the loaded state must differ from each fresh init, or the comparison proves nothing.
    got, want = snapshot(*runs["tessera"]), snapshot(*runs["dcp"])
    mine = {
        "keys_only_one_side": sorted(set(got) ^ set(want)),
        "mismatches": sorted(p for p in set(got) & set(want) if not same(got[p], want[p])),
        "unchanged_from_init": sorted(p for p in got if isinstance(got[p], tuple) and p in fresh["tessera"]
                                      and same(got[p], fresh["tessera"][p])),
        "unchanged_from_init_dcp": sorted(p for p in want if isinstance(want[p], tuple) and p in fresh["dcp"]
                                          and same(want[p], fresh["dcp"][p])),
        "tensors": sum(isinstance(v, tuple) for v in got.values()),
        "values": {p: v for p, v in got.items() if not isinstance(v, tuple) and "/params[" not in p},
        "steps": sorted({float(v[2].view(v[0]).item()) for p, v in got.items()
                         if p.endswith("/step") and isinstance(v, tuple)}),
    }
    per_rank = [None] * world
    dist.all_gather_object(per_rank, mine)

    reference = [None]
    if rank == 0:
        with open(os.path.join(directory, "reference.json")) as f:
            reference = [json.load(f)]
    dist.broadcast_object_list(reference, src=0)
    reference = reference[0]
    losses = {b: train(m, o, mesh, device, reference["steps"], steps) for b, (m, o) in runs.items()}
    ref = reference["losses_after_save"][:steps]
    record = {
        "event": "compare", "mesh": layout, "saved_mesh": reference["mesh"], "world": world, "device": device,
        "tensors_per_rank": [r["tensors"] for r in per_rank],
        "keys_only_one_side": sorted({k for r in per_rank for k in r["keys_only_one_side"]}),
        "mismatches": sorted({k for r in per_rank for k in r["mismatches"]}),
        "unchanged_from_init": sorted({k for r in per_rank for k in r["unchanged_from_init"]}),
        "unchanged_from_init_dcp": sorted({k for r in per_rank for k in r["unchanged_from_init_dcp"]}),
        "optimizer_steps": sorted({s for r in per_rank for s in r["steps"]}),
        "param_group_values": per_rank[0]["values"],
        "losses": {"tessera": losses["tessera"], "dcp": losses["dcp"], "uninterrupted": ref},
        "max_abs_diff_vs_uninterrupted": max(abs(a - b) for a, b in zip(losses["tessera"], ref)),
        "tessera_equals_dcp": losses["tessera"] == losses["dcp"],
    }
    report(directory, record)
    return record


def problems(record: dict) -> list[str]:
    """What the torchrun run counts as failure (the test asserts these and more)."""
    out = [f"{k}: {record[k]}" for k in ("keys_only_one_side", "mismatches", "unchanged_from_init",
                                          "unchanged_from_init_dcp") if record[k]]
    if not record["tessera_equals_dcp"]:
        out.append(f"resumed losses differ: {record['losses']}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--save-mesh", default="4x2", help="DPxTP of the save run (default 4x2)")
    ap.add_argument("--load-mesh", default="2x4", help="DPxTP of the resumed runs (default 2x4)")
    ap.add_argument("--dir", required=True, help="where the tessera store and the DCP directory go")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--phase", choices=("both", "save", "load"), default="both")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True)  # tessera vs DCP resumed losses must match exactly
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("cpu:gloo,cuda:nccl", device_id=torch.device("cuda", local))
    else:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    os.makedirs(args.dir, exist_ok=True)
    failed = False
    try:
        if args.phase in ("both", "save"):
            save_run(rank, world, args.dir, args.device, parse_mesh(args.save_mesh), args.steps)
        if args.phase in ("both", "load"):
            record = load_run(rank, world, args.dir, args.device, parse_mesh(args.load_mesh), args.steps)
            if rank == 0 and problems(record):
                print("FAILED: " + "; ".join(problems(record)), file=sys.stderr, flush=True)
                failed = True
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
