"""tessera's distributed save protocol over torch.distributed's own Store.

The C++ protocol (tessera/distributed.h) needs a ControlPlane: a key/value
store with a blocking get, add, compare_set and delete_key. The default
process group's Store (the TCPStore torchrun or init_process_group set up) is
one; keys live under "tessera/", and a save deletes the keys it made.
One plane per default store, kept for the job's life: it numbers the saves
made through it, so every rank must make the same saves in the same order.
"""
from __future__ import annotations

import datetime

import torch.distributed as dist

from . import _core

_planes: dict[int, tuple[object, _core.ControlPlane]] = {}


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def control_plane() -> _core.ControlPlane:
    """The control plane of the default process group (created on first use)."""
    base = dist.distributed_c10d._get_default_store()
    key = id(base)
    if key in _planes and _planes[key][0] is base:
        return _planes[key][1]
    store = dist.PrefixStore("tessera/", base)

    def set_key(k: str, v: bytes) -> None:
        store.set(k, v)

    def wait_get(k: str, timeout_s: float):
        try:
            store.wait([k], datetime.timedelta(seconds=timeout_s))
        except dist.DistStoreError:  # timed out
            return None
        return store.get(k)

    plane = _core.ControlPlane(dist.get_rank(), dist.get_world_size(), set_key, wait_get, add=store.add,
                               compare_set=store.compare_set, delete_key=store.delete_key)
    _planes[key] = (base, plane)
    return plane
