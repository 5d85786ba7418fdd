"""Deterministic test states: every rank computes the same full tensors, so
a loader checks its shard without communication."""
from __future__ import annotations

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

# name -> (global shape, dtype)
TENSORS = {
    "model.embed.weight": ((96, 40), torch.float32),
    "model.proj.weight": ((64, 50), torch.bfloat16),
    "model.norm.weight": ((50,), torch.float32),
    "model.counts": ((7, 3), torch.int64),
}


def full(name: str, shape, dtype, salt: int = 0) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    x = torch.arange(n, dtype=torch.float64).reshape(shape)
    x = (x * 0.37 + len(name) + salt).sin() * 100 if dtype.is_floating_point else x * (len(name) + 1) + salt
    return x.to(dtype)


def mesh1d():
    return init_device_mesh("cpu", (torch.distributed.get_world_size(),))


def sharded(name, placement_dim: int | None, mesh, salt: int = 0, zeros: bool = False):
    shape, dtype = TENSORS[name]
    t = torch.zeros(shape, dtype=dtype) if zeros else full(name, shape, dtype, salt)
    if placement_dim is None or len(shape) <= placement_dim:
        return distribute_tensor(t, mesh, [Replicate()])
    return distribute_tensor(t, mesh, [Shard(placement_dim)])


def state(mesh, dim: int | None, salt: int = 0, zeros: bool = False) -> dict:
    """A nested state: DTensors sharded along `dim` (None: replicated), a
    plain tensor, values of every kind and a few objects DCP pickles."""
    model = {k.removeprefix("model."): sharded(k, dim, mesh, salt, zeros) for k in TENSORS if k != "model.counts"}
    counts = torch.zeros(TENSORS["model.counts"][0], dtype=torch.int64) if zeros else full(
        "model.counts", *TENSORS["model.counts"], salt)
    return {
        "model": {**model, "counts": counts},
        "optim": {"step": 0 if zeros else 3 + salt, "lr": 0.0 if zeros else 0.01, "name": "" if zeros else "adamw",
                  "betas": None if zeros else (0.9, 0.95)},
    }


def check_state(sd: dict, salt: int = 0) -> None:
    for k, (shape, dtype) in TENSORS.items():
        v = sd["model"][k.removeprefix("model.")]
        got = v.full_tensor() if isinstance(v, DTensor) else v
        want = full(k, shape, dtype, salt)
        assert got.dtype == dtype, (k, got.dtype)
        assert torch.equal(got, want), f"tensor {k} differs"
    o = sd["optim"]
    assert o["step"] == 3 + salt and o["lr"] == 0.01 and o["name"] == "adamw" and tuple(o["betas"]) == (0.9, 0.95), o
