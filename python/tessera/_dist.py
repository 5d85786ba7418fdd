"""tessera's distributed save protocol over torch.distributed's own Store.

The C++ protocol (tessera/distributed.h) needs a ControlPlane: a key/value
store with a blocking get, add, compare_set and delete_key. The default
process group's Store (the TCPStore torchrun or init_process_group set up) is
one; keys live under "tessera/", and a save deletes the keys it made.
One plane per default store, kept for the job's life: it numbers the saves
made through it, so every rank must make the same saves in the same order.

Failures agree across ranks by class: the save protocol carries each
error's kind (its ErrorKind number, tessera/error.h; _core.error_kinds
lists the classes by it) beside its message, and the collectives of
tessera.load and the replicated reads share the kind of each rank's failure
(error_kind) and raise with raise_together, so a failure raises the same
tessera.Error subclass on every rank.
"""
from __future__ import annotations

import datetime

import torch.distributed as dist

from . import _core
from ._torch_compat import default_store

_planes: dict[int, tuple[object, _core.ControlPlane]] = {}


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def control_plane() -> _core.ControlPlane:
    """The control plane of the default process group (created on first use)."""
    base = default_store()
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


def error_kind(e: BaseException) -> int:
    """The ErrorKind number of `e`: its tessera.Error subclass, 0 (tessera.Error)
    for an exception that is not tessera's."""
    return next((k for k, cls in enumerate(_core.error_kinds) if k and isinstance(e, cls)), 0)


def raise_together(what: str, rank: int, kinds: list, failure: BaseException | None = None,
                   messages: list | None = None) -> None:
    """Raises on every rank once the ranks have shared how they fared:
    kinds[r] is None where rank r succeeded, else error_kind() of its failure
    (`failure` on this rank; messages[r] its text, where the collective carried
    it). Every rank raises the class of the lowest failing rank's error: that
    rank, and any failing rank whose error has the same class, raises its own
    error; the others raise that class naming the failed ranks (and the lowest
    one's message) from their own failure, if any. An interrupt
    (KeyboardInterrupt, SystemExit) is raised as itself."""
    failed, kind = _core.agree_failures(kinds)  # the rule, as the C++ protocols apply it
    if not failed:
        return
    first = failed[0]
    cls = _core.error_kinds[kind] if 0 <= kind < len(_core.error_kinds) else _core.Error
    if failure is not None and (not isinstance(failure, Exception) or
                                (isinstance(failure, _core.Error) and error_kind(failure) == kind)):
        raise failure
    if messages and messages[first]:
        cause = f": rank {first}: {messages[first]}"
    elif failure is not None:
        cause = f": {type(failure).__name__}: {failure}"
    else:
        cause = "; see their errors"
    raise cls(f"{what} failed on rank(s) {', '.join(map(str, failed))} (this is rank {rank}){cause}") from failure
