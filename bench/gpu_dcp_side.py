"""DCP's side of the GPU benchmark (bench/gpu_vs_dcp.sh), after
../shared/reference/dcp_baseline.py: a SmolLM2-1.7B-shaped LlamaForCausalLM
(random init, bf16) on one GPU with AdamW state after one step.

  torchrun --nproc_per_node=1 bench/gpu_dcp_side.py DISK_DIR SHM_DIR OUT_DIR

Writes OUT_DIR/manifest.tsv (every tensor of the flattened DCP state dict:
name, dtype, shape, device) for tessera's side to rebuild, then times
dcp.save (1 and 8 writer threads) to SHM_DIR and DISK_DIR, dcp.async_save
(twice) to DISK_DIR, and dcp.load from both (page cache dropped for the disk),
printing RESULT {json} lines. Uses a cpu:gloo,cuda:nccl process group (async
save needs gloo). Checkpoints are removed as soon as they are not needed."""
import json, os, shutil, sys, time

import torch, torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._nested_dict import flatten_state_dict
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

DISK, SHM, OUT = sys.argv[1:4]
CFG = dict(vocab_size=49152, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
           num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048, tie_word_embeddings=True)


def result(**kv):
    print("RESULT " + json.dumps(kv), flush=True)


def timed(fn):
    dist.barrier(); torch.cuda.synchronize()
    t = time.perf_counter(); fn(); torch.cuda.synchronize(); dist.barrier()
    return time.perf_counter() - t


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f: f.write("3\n")
        return True
    except OSError:
        return False


def build(seed):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    with torch.device("cuda"):
        m = LlamaForCausalLM(LlamaConfig(**CFG)).to(torch.bfloat16)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    ids = torch.randint(0, CFG["vocab_size"], (2, 256), device="cuda")
    m(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad()
    return m, opt


def state_of(m, opt):
    msd, osd = get_state_dict(m, opt)
    return {"model": msd, "optim": osd}


dist.init_process_group("cpu:gloo,cuda:nccl"); torch.cuda.set_device(0)
m, opt = build(0)
sd = state_of(m, opt)
flat, _ = flatten_state_dict(sd)
tensors = {k: v for k, v in flat.items() if torch.is_tensor(v)}
nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
    for k, t in tensors.items():
        f.write(f"{k}\t{str(t.dtype).replace('torch.', '')}\t{','.join(map(str, t.shape))}\t{t.device.type}\n")
result(phase="state", state_bytes=nbytes, tensors=len(tensors))

for where, root in (("shm", SHM), ("disk", DISK)):
    for threads in (1, 8):
        d = os.path.join(root, f"dcp_t{threads}")
        dt = timed(lambda: dcp.save(sd, storage_writer=dcp.FileSystemWriter(d, thread_count=threads)))
        result(phase="dcp_save", where=where, threads=threads, total_s=dt, state_bytes=nbytes)
        if threads == 1: shutil.rmtree(d)

for n in (1, 2):
    d = os.path.join(DISK, f"dcp_async{n}")
    dist.barrier(); torch.cuda.synchronize()
    t0 = time.perf_counter(); fut = dcp.async_save(sd, checkpoint_id=d); blocked = time.perf_counter() - t0
    fut.result(); total = time.perf_counter() - t0
    result(phase="dcp_async_save", call=n, blocked_s=blocked, total_s=total, state_bytes=nbytes)
    shutil.rmtree(d)

ref = {k: v.clone() for k, v in list(sd["model"].items())[:8]}
del sd, m, opt; torch.cuda.empty_cache()
for where, root in (("shm", SHM), ("disk", DISK)):
    m2, opt2 = build(1)
    sd2 = state_of(m2, opt2)
    dropped = drop_caches() if where == "disk" else None
    dt = timed(lambda: dcp.load(sd2, checkpoint_id=os.path.join(root, "dcp_t8")))
    set_state_dict(m2, opt2, model_state_dict=sd2["model"], optim_state_dict=sd2["optim"])
    ok = all(torch.equal(sd2["model"][k], v) for k, v in ref.items())
    result(phase="dcp_load", where=where, total_s=dt, state_bytes=nbytes, dropped_caches=dropped, ok=ok)
    shutil.rmtree(os.path.join(root, "dcp_t8"))
    del m2, opt2, sd2; torch.cuda.empty_cache()
dist.destroy_process_group()
