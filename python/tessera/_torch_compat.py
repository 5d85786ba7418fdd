"""Every use of torch's private API in the package, in one place.

The rest of the package imports these names from here and never reaches
into a private torch module itself (python/tests/test_types.py checks), so
a torch release that moves one of them breaks this file only.

Tested range. pyproject.toml pins torch to ">=2.11,<2.12": the package is
tested with torch 2.11 (requirements.txt, the GPU machine's version) and
nothing else. The private names below have moved between minor releases
before (DCP's flattening helpers changed their traversal in 2.4; the pinned
staging of DCP's async save moved twice), so a minor release is not assumed
to keep them: widen the pin (both bounds move together with TORCH_RANGE
below) after the Python suite passes on the next torch.

Where torch has a public equivalent it is used instead (and named here):
- a DTensor's box: DTensor.__create_chunk_list__(), the protocol DCP's own
  planners use to place a DTensor (was torch.distributed.tensor._utils.
  compute_local_shape_and_global_offset, which it calls);
- pinning memory in place: torch.cuda.cudart().cudaHostRegister (was
  torch.cuda._pin_memory_utils, a thin wrapper over the same call).

Private, with no public equivalent (each says why):
- flatten_state_dict / set_element (torch.distributed.checkpoint._nested_dict
  and _traverse): DCP's key flattening ("model.layers.0.weight", lists by
  index). tessera.save must flatten exactly as DCP does so that either
  loads the other's checkpoints; a copy of the rules would drift.
- default_store (torch.distributed.distributed_c10d._get_default_store):
  the default process group's Store, which the save protocol runs over.
  torch exposes no accessor for it.
- new_shared_storage (torch.UntypedStorage._new_shared): host memory
  allocated in shared memory. The public Tensor.share_memory_() allocates
  and then copies the whole block.
- cuda_in_bad_fork (torch.cuda._is_in_bad_fork): whether this is a process
  forked after CUDA started in its parent, where CUDA cannot start.
- dtensor_parts / dtensor_from_parts (DTensor._local_tensor, ._spec and the
  DTensor(local, spec) constructor): a DTensor rebuilt over a staged host
  copy of its local tensor. The public DTensor.from_local moves the local
  tensor to the mesh's device (back to the GPU) and re-derives the spec.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

# The torch versions this package is tested with: [low, high) as (major, minor).
# pyproject.toml's dependency says the same ("torch>=2.11,<2.12").
TORCH_RANGE = ((2, 11), (2, 12))


def flatten_state_dict(state_dict: dict) -> tuple[dict, dict]:
    """(flat state dict keyed by DCP's dotted names, name -> object path)."""
    from torch.distributed.checkpoint._nested_dict import flatten_state_dict as flatten
    return flatten(state_dict)


def set_element(root: dict, path, value) -> None:
    """Sets the element at `path` (an object path of flatten_state_dict) in `root`."""
    from torch.distributed.checkpoint._traverse import set_element as set_
    set_(root, path, value)


def dtensor_box(dt) -> tuple[list[int], list[int]]:
    """(local shape, global offsets) of this rank's shard of DTensor `dt`,
    as DCP places it. REQUIRES: this rank is in dt's mesh; no Partial placement."""
    chunks = dt.__create_chunk_list__()
    if len(chunks) != 1:
        raise ValueError(f"a DTensor with {len(chunks)} local chunks")
    return list(chunks[0].sizes), list(chunks[0].offsets)


def dtensor_parts(dt) -> tuple[torch.Tensor, object]:
    """(local tensor, spec) of a DTensor, for dtensor_from_parts."""
    return dt._local_tensor, dt._spec


def dtensor_from_parts(local: torch.Tensor, spec):
    """The DTensor of `spec` over `local`, wherever `local` lives (no copy)."""
    from torch.distributed.tensor import DTensor
    return DTensor(local, spec, requires_grad=False)


def default_store() -> dist.Store:
    """The default process group's Store (the TCPStore torchrun or init_process_group set up)."""
    return dist.distributed_c10d._get_default_store()


def new_shared_storage(nbytes: int) -> torch.UntypedStorage:
    """Uninitialized host memory in shared memory: tensors over it pickle to
    another process (torch.multiprocessing) without a copy."""
    return torch.UntypedStorage._new_shared(nbytes)


def pin(data_ptr: int, nbytes: int) -> None:
    """Pins (page-locks) host memory in place, for any CUDA context (portable)."""
    err = int(torch.cuda.cudart().cudaHostRegister(data_ptr, nbytes, 1))  # 1: cudaHostRegisterPortable
    if err != 0:
        raise RuntimeError(f"pinning {nbytes} bytes of host memory failed (cudaError {err})")


def unpin(data_ptr: int) -> None:
    """Undoes pin()."""
    err = int(torch.cuda.cudart().cudaHostUnregister(data_ptr))
    if err != 0:
        raise RuntimeError(f"unpinning host memory failed (cudaError {err})")


def cuda_in_bad_fork() -> bool:
    """Whether this process was forked after CUDA started in its parent (CUDA cannot start here)."""
    return torch.cuda._is_in_bad_fork()
