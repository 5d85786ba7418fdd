"""Filling destination tensors from a checkpoint: the one read path of
tessera.load and the DCP StorageReader.

A Box is one destination: a tensor (CPU or CUDA, any strides and dtype) and
where it sits in the saved global tensor. read_boxes() loads a list of them:

- CPU destination in the saved dtype: the bytes land in it directly;
- CPU destination in another dtype: they land in a temporary, then convert;
- CUDA destination: they land in pinned staging (tessera._staging.LOAD) wave
  by wave, and each wave's host-to-device copies (converting if needed)
  overlap the next wave's reads. When read_boxes returns, every copy has run.

A state dict holds one entry per name, so boxes of one tensor go to the core
in separate calls (unique_rounds); usually there is one round.
"""
from __future__ import annotations

import dataclasses

import torch

from . import _core, _staging
from ._entries import tensor_entry, unique_rounds


@dataclasses.dataclass
class Box:
    name: str                 # the saved tensor
    dest: torch.Tensor        # filled in place
    global_shape: list        # the saved global shape
    offsets: list             # where dest starts in it


def read_boxes(store: _core.Store, checkpoint: str, boxes: list[Box], saved_dtypes: dict[str, torch.dtype], *,
               verify: bool = True, threads: int = 0, progress=None) -> dict:
    """Loads every box (each must name a saved tensor); returns {"bytes_read", "chunks_read"}.
    progress: tessera._core's progress callback (see _progress.callback), or None."""
    total = {"bytes_read": 0, "chunks_read": 0}
    staging = _staging.LoadStaging()
    try:
        for part in unique_rounds(boxes, key=lambda b: b.name):
            entries, converts = [], []
            for b in part:
                saved = saved_dtypes.get(b.name, b.dest.dtype)
                dest = b.dest.detach()
                _staging.refuse_quantized(b.name, dest)
                if dest.layout == torch.strided and any(s == 0 and n > 1 for s, n in zip(dest.stride(), dest.shape)):
                    raise _core.InvalidArgument(f"tensor '{b.name}': an expanded (stride 0) destination cannot hold "
                                                "distinct loaded values")
                if dest.is_cuda or _staging.stage_host_tensors:
                    entries.append(staging.entry(b.name, dest, saved, b.global_shape, b.offsets))
                elif dest.dtype != saved or dest.layout != torch.strided:
                    tmp = torch.empty(dest.shape, dtype=saved)
                    entries.append(tensor_entry(b.name, tmp, b.global_shape, b.offsets))
                    converts.append((dest, tmp))
                else:
                    entries.append(tensor_entry(b.name, dest, b.global_shape, b.offsets))
            r = _core.load(store, checkpoint, entries, verify=verify, threads=threads,
                           max_staging_bytes=staging.wave_bytes, progress=progress)
            total["bytes_read"] += r.bytes_read
            total["chunks_read"] += r.chunks_read
            with torch.no_grad():
                for dest, tmp in converts:
                    dest.copy_(tmp)
    finally:
        staging.finish()
    return total
