#!/usr/bin/env python3
"""DCP's FileSystemWriter/Reader against tessera's DCP backend
(tessera.dcp.StorageWriter/StorageReader) on a multi-GPU host, same model,
same disk, one run. Launched once per phase by bench/py_gpu_dcp_bench.sh:

    python3 -m torch.distributed.run --standalone --nproc_per_node=N \\
        bench/py_gpu_dcp_bench.py --dir DIR --phase PHASE [--results FILE] [model options]
    python3 bench/py_gpu_dcp_bench.py --summary FILE        # the table, from the JSON lines

Model: a SmolLM2-1.7B-shaped transformers Llama (vocab 49152, hidden 2048,
MLP 8192, 24 layers, 32 heads, tied embeddings), bf16, AdamW(foreach=False)
after one training step (batch 1 x 128 random tokens), saved as DCP's recipe
{"app": AppState(model, optimizer)} (get_state_dict / set_state_dict).
--layers/--hidden/--intermediate/--vocab/--heads shrink it (CPU tests).
CUDA if available (process group "cpu:gloo,cuda:nccl"), else CPU and Gloo.

Phases (N ranks, N even):
  tp-save    A: mesh (dp=N/2, tp=2); the model from transformers with
             tp_plan="auto" on mesh["tp"] (from_pretrained of a random model
             written once to --model-dir). On CPU, if that path fails or ignores
             the mesh, ColwiseParallel/RowwiseParallel by hand (tp_impl says which).
  tp-load    A: resharding load on tp=N (1-D mesh, tp_plan="auto"), then a
             replicated load on dp=N (a plain model on every rank).
  fsdp-save  B: fully_shard on every decoder layer, then the root, 1-D mesh of N.
  fsdp-load  B: (N/2 ranks) the same FSDP2 model on N/2 ranks.
Both backends run with their defaults: FileSystemWriter(dir) (one thread,
one file per rank) and FileSystemReader(dir); StorageWriter(store, name) and
StorageReader(store, name) as the installed tessera package has them.
Saves, per backend: dcp.save once (kept for the loads), then dcp.async_save
twice into fresh directories/stores (removed once timed): the first call pays
one-time costs (e.g. pinning), the second is the steady state.

Numbers (one JSON line per measurement in --results; times are the maximum
over ranks, barrier before and after, CUDA synchronized):
  seconds        save: dcp.save's time; async: call until .result() returned;
                 load: dcp.load's time, page cache dropped before (rank 0:
                 sync; echo 3 > /proc/sys/vm/drop_caches; dropped=false if not root)
  blocked_s      async: how long dcp.async_save held the caller
  written_bytes  the checkpoint's size on disk afterwards (du: allocated blocks)
  rchar, read_bytes  loads, per rank: /proc/self/io deltas; rchar = every byte
                 read()/pread() returned (page cache or not), read_bytes = bytes
                 the process caused to be fetched from storage (this includes
                 Python modules and code a load uses for the first time: MBs)
  compared, mismatches, unloaded  loads: every tensor of the loaded model and
                 optimizer state (local shards) compared with torch.equal, tessera
                 against DCP; unloaded = DCP-loaded tensors still all POISON
                 (loads go into state filled with POISON first)
  state_bytes    the logical state: sum of global tensor sizes of the state dict
The summary gives tessera/DCP time ratios and GB/s (bytes on disk written, or
read_bytes summed over ranks, per second) as a fraction of dd's 8-stream
direct-I/O bandwidth measured by the launcher in the same run.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import time
import warnings

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

POISON = 7.0  # loads go into state filled with this; no trained weight or moment equals it everywhere
BACKENDS = ("dcp", "tessera")


class AppState(Stateful):
    """DCP's recipe: model and optimizer state as one Stateful."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, sd):
        set_state_dict(self.model, self.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


# ---------------------------------------------------------------- environment

class Env:
    def __init__(self, a):
        self.a = a
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            self.dev = torch.device("cuda", torch.cuda.current_device())
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            self.dev = torch.device("cpu")
            dist.init_process_group("gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        # async_save's background thread runs collectives; keep them off the group this thread uses
        self.async_pg = dist.new_group(backend="gloo")

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def log(self, **rec):
        rec.update(world=self.world, device=torch.cuda.get_device_name() if self.dev.type == "cuda" else "cpu")
        if self.rank == 0:
            with open(self.a.results, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)

    def reduce(self, xs, op=dist.ReduceOp.SUM, dtype=torch.int64):
        t = torch.tensor(xs, dtype=dtype)  # CPU: over Gloo, also on GPU
        dist.all_reduce(t, op=op)
        return t.tolist()

    def gather(self, xs):
        t = torch.tensor(xs, dtype=torch.int64)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [o.tolist() for o in out]

    def timed(self, fn):
        dist.barrier(); self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync(); dist.barrier()
        return self.reduce([time.perf_counter() - t0], dist.ReduceOp.MAX, torch.float64)[0]

    def sync_disk(self, drop_caches=False) -> bool:
        """Rank 0: sync (earlier writes out of the timed window), then optionally
        drop the page cache (False if that is not allowed); then a barrier."""
        ok = True
        if self.rank == 0:
            os.sync()
            try:
                if drop_caches:
                    with open("/proc/sys/vm/drop_caches", "w") as f:
                        f.write("3\n")
            except OSError:
                ok = False
        dist.barrier()
        return ok

    def du(self, path):
        """The checkpoint's allocated bytes, from rank 0 (which alone removes checkpoints)."""
        return sum(os.stat(os.path.join(r, f)).st_blocks * 512
                   for r, _, fs in os.walk(path) for f in fs) if self.rank == 0 else 0

    def rmtree(self, path):
        if self.rank == 0:
            shutil.rmtree(path, ignore_errors=True)
        dist.barrier()


def io_counters():
    with open("/proc/self/io") as f:
        kv = dict(line.split(": ") for line in f.read().splitlines())
    return int(kv["rchar"]), int(kv["read_bytes"])


def leaves(obj, prefix=""):
    """(name, tensor) for every tensor in nested dicts/lists, in a fixed order."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from leaves(obj[k], f"{prefix}{k}.")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{prefix}{i}.")
    elif torch.is_tensor(obj):
        yield prefix[:-1], obj


def local(t):
    return t.to_local() if isinstance(t, DTensor) else t


# ---------------------------------------------------------------- models

def llama_config(a):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                       num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                       max_position_embeddings=2048, tie_word_embeddings=True)


def plain_model(a, dev, seed=0):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)  # the same weights on every rank
    with torch.device(dev):
        return AutoModelForCausalLM.from_config(llama_config(a), dtype=torch.bfloat16)


def model_dir(env):
    """A random model in transformers' format, for from_pretrained(tp_plan="auto")."""
    d = env.a.model_dir
    if env.rank == 0 and not os.path.exists(os.path.join(d, "config.json")):
        plain_model(env.a, env.dev).save_pretrained(d)
    dist.barrier()
    return d


def tp_model(env, mesh):
    """The model tensor-parallel over the 1-D `mesh`: transformers' tp_plan="auto"
    (the path measured on GPU); on CPU a hand-made plan if that fails or
    shards over another mesh (transformers >= 5.18 ignores device_mesh)."""
    from transformers import AutoModelForCausalLM
    d, why = model_dir(env), ""
    if env.a.tp_impl == "auto":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # tp_plan= is deprecated in 5.17, still honoured
                m = AutoModelForCausalLM.from_pretrained(d, device_mesh=mesh, tp_plan="auto", dtype=torch.bfloat16)
            meshes = [p.device_mesh.mesh.tolist() for p in m.parameters() if isinstance(p, DTensor)]
            ok = bool(meshes) and all(x == mesh.mesh.tolist() for x in meshes)
            why = "" if ok else f"tp_plan='auto' sharded over {meshes[:1]}, not {mesh.mesh.tolist()}"
        except Exception as e:  # noqa: BLE001
            why = f"tp_plan='auto' failed: {type(e).__name__}: {str(e).split('. ')[0][:160]}"
        if not env.reduce([int(bool(why))])[0]:  # every rank agrees
            return m, "auto"
        if env.dev.type == "cuda":
            raise RuntimeError(why or "tp_plan='auto' failed on another rank")
        if env.rank == 0:
            print(f"bench: {why}; CPU test, tensor parallel by hand instead", flush=True)
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16).to(env.dev)
    plan = {f"self_attn.{p}_proj": ColwiseParallel() for p in "qkv"}
    plan.update({"self_attn.o_proj": RowwiseParallel(), "mlp.gate_proj": ColwiseParallel(),
                 "mlp.up_proj": ColwiseParallel(), "mlp.down_proj": RowwiseParallel()})
    for layer in m.model.layers:  # embeddings and norms stay replicated
        parallelize_module(layer, mesh, plan)
    return m, "manual (" + (why or "--tp-impl manual") + ")"


def fsdp_model(env, mesh):
    from torch.distributed.fsdp import fully_shard
    m = plain_model(env.a, env.dev)
    for layer in m.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(m, mesh=mesh)
    return m


def with_optimizer(model):
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)  # TP leaves norms plain: no foreach


def train_step(env, model, opt):
    g = torch.Generator().manual_seed(1234)  # the same batch on every rank: replicas stay equal
    ids = torch.randint(0, env.a.vocab, (1, env.a.seq), generator=g).to(env.dev)
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad()


def state_bytes(model, opt):
    return sum(t.numel() * t.element_size() for _, t in leaves(get_state_dict(model, opt)))  # DTensor: global


# ---------------------------------------------------------------- measurements

def paths(env, scenario):
    root = os.path.join(env.a.dir, scenario)
    return {"dcp": os.path.join(root, "dcp-sync"), "tessera": os.path.join(root, "tessera-sync")}


def writer(backend, path, name):
    from tessera.dcp import StorageWriter
    return dcp.FileSystemWriter(path) if backend == "dcp" else StorageWriter(path, name)


def reader(backend, path):
    from tessera.dcp import StorageReader
    return dcp.FileSystemReader(path) if backend == "dcp" else StorageReader(path, "sync")


SAVE_STEPS = ("write_data", "finish")
LOAD_STEPS = ("read_metadata", "prepare_global_plan", "read_data")


def step_seconds(env, backend, obj, steps):
    """tessera's StorageWriter/Reader step timings, max over ranks (a step
    some ranks skip counts 0 there): {"steps": {step: seconds}}, or {} for DCP."""
    if backend != "tessera":
        return {}
    t = getattr(obj, "timings", {})
    return {"steps": dict(zip(steps, env.reduce([t.get(k, 0.0) for k in steps], dist.ReduceOp.MAX, torch.float64)))}


def measure_saves(env, scenario, model, opt, extra):
    state = {"app": AppState(model, opt)}
    extra = dict(extra, state_bytes=state_bytes(model, opt))
    for backend, path in paths(env, scenario).items():
        env.sync_disk()
        w = writer(backend, path, "sync")
        with RssPeak() as rss:
            t = env.timed(lambda: dcp.save(state, storage_writer=w))
        env.log(scenario=scenario, op="save", backend=backend, seconds=t, written_bytes=env.du(path),
                rss_growth=env.reduce([rss.growth], dist.ReduceOp.MAX)[0], **step_seconds(env, backend, w, SAVE_STEPS),
                **extra)
    for backend in BACKENDS:  # a second synchronous save: the steady state (one-time costs paid)
        path = os.path.join(env.a.dir, scenario, f"{backend}-sync-2")
        env.sync_disk()
        w = writer(backend, path, "sync-2")
        with RssPeak() as rss:
            t = env.timed(lambda: dcp.save(state, storage_writer=w))
        env.log(scenario=scenario, op="save2", backend=backend, seconds=t, written_bytes=env.du(path),
                rss_growth=env.reduce([rss.growth], dist.ReduceOp.MAX)[0], **step_seconds(env, backend, w, SAVE_STEPS),
                **extra)
        env.rmtree(path)
    for i in (1, 2):
        for backend in BACKENDS:
            path = os.path.join(env.a.dir, scenario, f"{backend}-async-{i}")
            env.sync_disk()
            dist.barrier(); env.sync()
            t0 = time.perf_counter()
            resp = dcp.async_save(state, storage_writer=writer(backend, path, f"async-{i}"), process_group=env.async_pg)
            blocked = time.perf_counter() - t0
            getattr(resp, "upload_completion", resp).result()  # a Future, or an AsyncSaveResponse
            blocked, total = env.reduce([blocked, time.perf_counter() - t0], dist.ReduceOp.MAX, torch.float64)
            env.log(scenario=scenario, op=f"async{i}", backend=backend, seconds=total, blocked_s=blocked,
                    written_bytes=env.du(path), **extra)
            env.rmtree(path)


class RssPeak:
    """Peak growth of this process's resident memory (VmRSS) while the block
    runs, sampled every 5 ms: host memory a save holds (pinned staging included)."""

    def __enter__(self):
        import threading
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.growth = self.peak - self.base


def poison(model, opt):
    get_state_dict(model, opt)  # creates the fresh optimizer's state, as dcp.load's AppState would
    with torch.no_grad():
        for _, t in leaves([list(model.parameters()), list(opt.state.values())]):
            t.fill_(POISON)


def measure_load(env, scenario, op, build, extra=None):
    """Loads the scenario's two checkpoints into fresh models from build(), page
    cache dropped before each, and compares the two loaded states exactly.
    `extra` (which build may fill in) goes into the records. The warm-up runs
    the code of both loads once: drop_caches keeps pages that are mapped, so
    without it the first load would page in code that the second finds."""
    loaded, recs, extra = {}, {}, extra if extra is not None else {}
    for backend, path in paths(env, scenario).items():  # warm-up: one small tensor, untimed
        norm = torch.empty(env.a.hidden, dtype=torch.bfloat16, device=env.dev)
        dcp.load({"app": {"model": {"model.norm.weight": norm}}}, storage_reader=reader(backend, path))
    for backend, path in paths(env, scenario).items():
        model, opt = build()
        poison(model, opt)
        rd = reader(backend, path)
        dropped = env.sync_disk(drop_caches=True)
        c0 = io_counters()
        t = env.timed(lambda: dcp.load({"app": AppState(model, opt)}, storage_reader=rd))
        c1 = io_counters()
        io = env.gather([c1[0] - c0[0], c1[1] - c0[1], getattr(rd, "bytes_read", 0)])
        recs[backend] = dict(scenario=scenario, op=op, backend=backend, seconds=t, dropped_caches=dropped,
                             rchar=[x[0] for x in io], read_bytes=[x[1] for x in io], **extra)
        if backend == "tessera":
            recs[backend]["tessera_bytes_read"] = sum(x[2] for x in io)
            st = getattr(rd, "last_stats", {}) or {}
            if "exchange_seconds" in st:  # read once: reading vs moving rows between ranks (max over ranks)
                r, x = env.reduce([st["read_seconds"], st["exchange_seconds"]], dist.ReduceOp.MAX, torch.float64)
                recs[backend].update(read_seconds=r, exchange_seconds=x, transfers=st["transfers"])
            recs[backend].update(step_seconds(env, backend, rd, LOAD_STEPS))
        loaded[backend] = (model, opt)
    a = dict(leaves(get_state_dict(*loaded["dcp"])))
    b = dict(leaves(get_state_dict(*loaded["tessera"])))
    mism = sum(k not in b or not torch.equal(local(v), local(b[k])) for k, v in a.items()) + len(b.keys() - a.keys())
    unloaded = sum(local(v).numel() > 0 and bool((local(v) == POISON).all()) for v in a.values())
    compared, mism, unloaded = env.reduce([len(a), mism, unloaded])
    recs["tessera"].update(compared=compared, mismatches=mism, unloaded=unloaded)
    recs["dcp"].update(state_bytes=state_bytes(*loaded["dcp"]))
    for r in recs.values():
        env.log(**r)
    del loaded, a, b
    gc.collect()  # the next build needs the memory (transformers models hold reference cycles)
    if env.dev.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- phases

def phase_tp_save(env):
    assert env.world % 2 == 0, "tp-save needs an even number of ranks (tp=2)"
    mesh = init_device_mesh(env.dev.type, (env.world // 2, 2), mesh_dim_names=("dp", "tp"))
    model, impl = tp_model(env, mesh["tp"])
    model, opt = with_optimizer(model)
    train_step(env, model, opt)
    measure_saves(env, "tp", model, opt, {"mesh": f"dp={env.world // 2} x tp=2", "tp_impl": impl})


def phase_tp_load(env):
    mesh = init_device_mesh(env.dev.type, (env.world,), mesh_dim_names=("tp",))
    extra = {}

    def build_tp():
        m, extra["tp_impl"] = tp_model(env, mesh)
        return with_optimizer(m)

    measure_load(env, "tp", f"load tp={env.world}", build_tp, extra)
    replica = lambda: with_optimizer(plain_model(env.a, env.dev, seed=1))  # noqa: E731
    measure_load(env, "tp", f"load dp={env.world} (replicated)", replica)


def phase_fsdp_save(env):
    mesh = init_device_mesh(env.dev.type, (env.world,))
    model, opt = with_optimizer(fsdp_model(env, mesh))
    train_step(env, model, opt)
    measure_saves(env, "fsdp", model, opt, {"mesh": f"fsdp={env.world}"})


def phase_fsdp_load(env):
    mesh = init_device_mesh(env.dev.type, (env.world,))
    measure_load(env, "fsdp", f"load fsdp={env.world}", lambda: with_optimizer(fsdp_model(env, mesh)))


# ---------------------------------------------------------------- summary

def summary(path):
    recs = [json.loads(line) for line in open(path) if line.startswith("{")]
    dd = {}
    for r in recs:
        if r["scenario"] == "dd":
            dd.setdefault(r["op"], []).append(r["bytes"] / r["seconds"])
    bw = {k: sum(v) / len(v) for k, v in dd.items()}
    big = max((r.get("state_bytes", 0) for r in recs), default=0) >= 1e9
    unit, u = (1e9, "GB") if big else (1e6, "MB")
    print(f"dd direct I/O, {u}/s (mean over rounds): "
          + ", ".join(f"{k} {v / unit:.2f}" for k, v in sorted(bw.items())))
    rows = {}  # (scenario, op) -> {backend: record}, in the order measured
    for r in (r for r in recs if r["scenario"] in ("tp", "fsdp")):
        if "state_bytes" in r and not any(k[0] == r["scenario"] for k in rows):
            print(f"{r['scenario']}: state {r['state_bytes'] / unit:.2f} {u}, {r['world']} ranks, {r['device']}"
                  + (f", tp_impl {r['tp_impl']}" if "manual" in r.get("tp_impl", "") else ""))
        if "blocked_s" in r:
            rows.setdefault((r["scenario"], r["op"] + " blocked"), {})[r["backend"]] = dict(r, seconds=r["blocked_s"])
        rows.setdefault((r["scenario"], r["op"]), {})[r["backend"]] = r
    print(f"{u}: saves bytes on disk, loads read_bytes summed over ranks (rchar in parentheses); of dd: "
          f"{u}/s over dd's parallel direct-I/O bandwidth (write_par for saves, read_par for loads)")
    head = ["DCP s", "tess s", "tess/DCP", f"DCP {u}/s", "of dd", f"tess {u}/s", "of dd", f"DCP {u}", f"tess {u}",
            "mismatch"]
    print(f"{'measurement':<34}" + "".join(f"{h:>11}" for h in head))
    for (scenario, op), cells in rows.items():
        load, x = op.startswith("load"), [cells.get(b) for b in BACKENDS]
        ref = bw.get("read_par" if load else "write_par")
        cols = [f"{c['seconds']:.2f}" if c else "-" for c in x]
        cols.append(f"{x[1]['seconds'] / x[0]['seconds']:.2f}" if all(x) else "-")
        for c in x:
            rate = c and (sum(c["read_bytes"]) if load else c["written_bytes"]) / c["seconds"]
            ok = c and "blocked" not in op
            cols += [f"{rate / unit:.2f}" if ok else "-", f"{rate / ref:.0%}" if ok and ref else "-"]
        for c in x:
            cols.append("-" if not c else f"{sum(c['read_bytes']) / unit:.2f}({sum(c['rchar']) / unit:.1f})"
                        if load else f"{c['written_bytes'] / unit:.2f}")
        cols.append(f"{x[1]['mismatches']}/{x[1]['compared']}" if x[1] and "mismatches" in x[1] else "")
        print(f"{scenario + ' ' + op:<34}" + "".join(f"{c:>11}" for c in cols))
    for (scenario, op), cells in rows.items():
        if all(c and "rss_growth" in c for c in (cells.get(b) for b in BACKENDS)):
            print(f"{scenario} {op}: host memory growth during the save (VmRSS peak, max over ranks): "
                  + ", ".join(f"{b} {cells[b]['rss_growth'] / 2**30:.2f} GiB" for b in BACKENDS))
    if any(r.get("unloaded") for r in recs):
        print("note: some DCP-loaded tensors were never written (still POISON): see 'unloaded' in the JSON lines")
    if any(r.get("dropped_caches") is False for r in recs):
        print("note: the page cache could not be dropped (not root): loads may have read from memory")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", help="where checkpoints go (the disk to measure)")
    p.add_argument("--phase", choices=["tp-save", "tp-load", "fsdp-save", "fsdp-load"])
    p.add_argument("--results", help="JSON lines are appended here (default DIR/../py-gpu-bench-results.txt)")
    p.add_argument("--summary", metavar="FILE", help="print the table of FILE's results and exit")
    p.add_argument("--model-dir", help="the random transformers model for tp_plan (default DIR/hf-model)")
    p.add_argument("--tp-impl", choices=["auto", "manual"], default="auto")
    for name, default in dict(layers=24, hidden=2048, intermediate=8192, vocab=49152, heads=32, seq=128).items():
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    if a.summary:
        return summary(a.summary)
    if not (a.dir and a.phase):
        p.error("--dir and --phase are required (or --summary FILE)")
    a.dir = os.path.abspath(a.dir)
    a.results = a.results or os.path.join(os.path.dirname(a.dir), "py-gpu-bench-results.txt")
    a.model_dir = a.model_dir or os.path.join(a.dir, "hf-model")
    env = Env(a)
    os.makedirs(a.dir, exist_ok=True)
    {"tp-save": phase_tp_save, "tp-load": phase_tp_load,
     "fsdp-save": phase_fsdp_save, "fsdp-load": phase_fsdp_load}[a.phase](env)
    dist.barrier()
    env.log(scenario="phase", op=a.phase, done=True)  # the launcher tells a finished phase by this line
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
