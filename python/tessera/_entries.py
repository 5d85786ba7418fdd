"""Tensors and values <-> the entry descriptions tessera._core takes.

A tensor entry is ("t", name, data_ptr, dtype, elem_size, sizes, strides,
global_shape, offsets, replica_index, replica_count) over a CPU tensor the
caller keeps alive; a value entry is ("v", name, value) with value an int,
float, str or bytes (see _core.cc). Other Python objects are stored as bytes
in torch.save format (DCP's own encoding for non-tensor items); the
checkpoint's metadata JSON lists their names under
python.torch_saved, so a loader knows to decode them.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

import torch

from . import _core

METADATA_KEY = "python"  # key of the Python package's object in the checkpoint metadata JSON


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> "float32": the names the catalog uses."""
    return str(dtype).removeprefix("torch.")


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype '{name}'")
    return dtype


def tensor_entry(name: str, t: torch.Tensor, global_shape=None, offsets=None,
                 replica_index: int = 0, replica_count: int = 1) -> tuple:
    """REQUIRES: t on the CPU, strided, alive for the call that uses the entry."""
    sizes = list(t.shape)
    return ("t", name, t.data_ptr(), dtype_name(t.dtype), t.element_size(), sizes, list(t.stride()),
            list(sizes if global_shape is None else global_shape),
            [0] * len(sizes) if offsets is None else list(offsets),
            int(replica_index), int(replica_count))


def native_value(v: Any) -> bool:
    """Whether `v` is stored as a tessera value as it is (else torch.save'd)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -(2**63) <= v < 2**63
    return isinstance(v, (float, str, bytes))


def encode_object(v: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(v, buf)
    return buf.getvalue()


def decode_object(name: str, b: bytes, trust: bool = False) -> Any:
    """The object a torch.save payload holds. Untrusted (default), only what
    torch.load(weights_only=True) allows: tensors, numbers, strings, bytes,
    containers of them, ... never code. `trust` lifts that (arbitrary pickle:
    only for stores you trust)."""
    try:
        return torch.load(io.BytesIO(b), weights_only=not trust)
    except pickle.UnpicklingError as e:
        if trust:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _core.InvalidArgument(
            f"value '{name}': its torch.save payload holds more than plain data ({first}); it was not "
            "unpickled. Load with trust_objects=True only if you trust this store") from None


# Template values that tell _core.load which value kind to expect.
VALUE_TEMPLATES = {"int": 0, "float": 0.0, "string": "", "bytes": b""}


def unique_rounds(items, key):
    """Splits `items` into lists in which key(item) is unique (a state dict
    holds one entry per name; a rank may hold several boxes of one tensor)."""
    rounds: list[list] = []
    seen: list[set] = []
    for it in items:
        k = key(it)
        for r, s in zip(rounds, seen):
            if k not in s:
                r.append(it)
                s.add(k)
                break
        else:
            rounds.append([it])
            seen.append({k})
    return rounds
