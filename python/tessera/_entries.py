"""Tensors and values <-> the entry descriptions tessera._core takes.

A tensor entry is a _core.TensorDesc over a CPU tensor the caller keeps
alive (tensor_entry); a value entry a _core.ValueDesc with an int, float,
str or bytes (value_entry); a device tensor's is a _core.StagedDesc
(_staging.py). See _core.pyi. Other Python objects are stored as bytes
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
                 replica_index: int = 0, replica_count: int = 1) -> _core.TensorDesc:
    """REQUIRES: t on the CPU, strided, alive for the call that uses the entry."""
    return _core.TensorDesc(name=name, data_ptr=t.data_ptr(), dtype=dtype_name(t.dtype), elem_size=t.element_size(),
                            sizes=list(t.shape), strides=list(t.stride()),
                            global_shape=None if global_shape is None else list(global_shape),
                            offsets=None if offsets is None else list(offsets),
                            replica_index=int(replica_index), replica_count=int(replica_count))


def value_entry(name: str, value: int | float | str | bytes) -> _core.ValueDesc:
    """A value entry (for a load: a template of the kind expected, see VALUE_TEMPLATES)."""
    return _core.ValueDesc(name=name, value=value)


def sum_save_results(results) -> _core.SaveResult:
    """The statistics of several parts of one save, summed (removed/freed_bytes: the commit's only)."""
    total = dict(logical_bytes=0, written_bytes=0, chunks=0, chunks_written=0, packs=0)
    for r in results:
        for k in total:
            total[k] += getattr(r, k)
    return _core.SaveResult(**total)


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
