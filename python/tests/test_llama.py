"""The seed's example: an AppState(model, optimizer) over a small
transformers Llama (built from a config, nothing downloaded), sharded with
FSDP2 (DTensor, CPU mesh over Gloo); one train step; dcp.save through
tessera; load into a fresh model on another number of ranks and layout
through tessera; parameters and optimizer state equal."""
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_state_dict,
                                                     set_state_dict)
from torch.distributed.checkpoint.stateful import Stateful

import tessera
from tessera.dcp import StorageReader, StorageWriter


class AppState(Stateful):
    """DCP's recipe: model and optimizer state as one Stateful."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, sd):
        set_state_dict(self.model, self.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


def build(layout: str):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    if layout == "fsdp":
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.device_mesh import init_device_mesh
        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    elif layout == "tp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for layer in model.model.layers:
            parallelize_module(layer, mesh, {"mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(),
                                             "mlp.down_proj": RowwiseParallel()})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt


def full_state(model, opt):
    return get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _train_and_save(rank, world, store, ref):
    model, opt = build("fsdp")
    torch.manual_seed(1)
    ids = torch.randint(0, 256, (2, 16))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    dcp.save({"app": AppState(model, opt)}, storage_writer=StorageWriter(store, "step-1"))
    msd, osd = full_state(model, opt)
    if rank == 0:
        torch.save({"model": msd, "optim": osd}, ref)


def _load_and_compare(rank, world, store, ref, layout):
    model, opt = build(layout)
    before, _ = full_state(model, opt)
    if rank == 0:  # the fresh model is the untrained one: the check below is not vacuous
        want = torch.load(ref, weights_only=False)["model"]
        assert not any(torch.equal(before[k], v) for k, v in want.items() if k.endswith("q_proj.weight"))
    app = AppState(model, opt)  # get_state_dict creates the fresh optimizer's state to load into
    dcp.load({"app": app}, storage_reader=StorageReader(store, "step-1"))
    msd, osd = full_state(model, opt)
    if rank == 0:
        want = torch.load(ref, weights_only=False)
        assert set(msd) == set(want["model"]) and len(msd) > 10, set(msd) ^ set(want["model"])
        for k, v in want["model"].items():
            assert torch.equal(msd[k], v), f"parameter {k} differs"
        ws, gs = want["optim"]["state"], osd["state"]
        assert set(ws) == set(gs) and len(ws) == len(msd), set(ws) ^ set(gs)
        for k in ws:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(torch.as_tensor(gs[k][name]), torch.as_tensor(ws[k][name])), f"optim {k}.{name}"
            assert float(ws[k]["step"]) == 1.0
        assert osd["param_groups"][0]["lr"] == want["optim"]["param_groups"][0]["lr"]


def test_llama_fsdp2_saved_on_2_ranks_loads_on_3_tp_ranks_and_1(tmp_path, ranks):
    tmp = str(tmp_path)
    store, ref = os.path.join(tmp, "store"), os.path.join(tmp, "ref.pt")
    ranks(_train_and_save, 2, store, ref)
    ranks(_load_and_compare, 3, store, ref, "fsdp")  # FSDP2 over 3 ranks (uneven shards)
    ranks(_load_and_compare, 2, store, ref, "tp")    # tensor parallel MLPs, replicated rest
    ranks(_load_and_compare, 1, store, ref, "none")  # one process, plain tensors
    info = tessera.Store(store).checkpoint("step-1")
    assert info.world_size == 2 and info.tensors > 20, info

