"""The `tessera` command's verbs as Python functions, one implementation each
(the C++ library the CLI calls): ls, show, verify, diff, rm, gc, export.
`store` is a path or a tessera.Store; a path is opened read-only for the
verbs that only read. Errors are tessera.Error subclasses, as from the CLI.

    import tessera
    tessera.verify("/ckpt/run-7").ok
    tessera.rm("/ckpt/run-7", ["step-100"], gc=True).gc.freed_bytes

Results are typed records (tessera.CheckpointSummary, EntryInfo,
VerifyReport, DiffReport, GcResult, RemoveResult, ExportResult; see
tessera/__init__.py on the dict-style access they keep for one release).
"""
from __future__ import annotations

from . import _core, _progress
from .api import _store_path


def _open(store, read_only: bool) -> _core.Store:
    return store if isinstance(store, _core.Store) else _core.Store(_store_path(store), read_only=read_only)


def ls(store) -> list[_core.CheckpointSummary]:
    """One record per checkpoint, oldest first (`tessera ls`)."""
    return _open(store, True).checkpoints()


def show(store, checkpoint: str) -> list[_core.EntryInfo]:
    """The checkpoint's entries: name, kind, dtype, shape, chunks, bytes (`tessera show`)."""
    return _core.describe(_open(store, True), checkpoint)


def verify(store, checkpoints=(), *, threads: int = 0, progress=None) -> _core.VerifyReport:
    """Checks the catalog and re-reads every chunk of `checkpoints` (all when
    empty) (`tessera verify`). Damage is reported, not raised: ok, damaged
    [{chunk, pack, problem, users}], catalog [{checkpoint, problem}],
    chunks_checked, bytes_checked. progress: True or a callable taking a
    tessera.Progress."""
    return _core.verify(_open(store, True), list(checkpoints), threads, _progress.callback(progress))


def diff(store, a: str, b: str, *, values: bool = False, threads: int = 0) -> _core.DiffReport:
    """What changed from checkpoint `a` to `b` (`tessera diff`): identical,
    added, removed, changed [{name, change, changed_chunks, changed_bytes, ...,
    stats with values=True}], unchanged."""
    return _core.diff(_open(store, True), a, b, values, threads)


def gc(store, *, dry_run: bool = False, rewrite_below: float = 0.75, grace_s: float = 3600,
       progress=None) -> _core.GcResult:
    """Deletes packs no checkpoint uses and rewrites mostly dead ones
    (`tessera gc`): the plan (delete_packs, rewrite_packs, bytes_to_free, ...)
    and, unless dry_run, what was done (freed_bytes, deleted_packs, skipped, ...)."""
    return _core.gc(_open(store, dry_run), dry_run, rewrite_below, grace_s, _progress.callback(progress))


_gc = gc  # for rm, whose flag is named gc too


def rm(store, checkpoints, *, gc: bool = False) -> _core.RemoveResult:
    """Removes checkpoints in one transaction (`tessera rm`); with gc=True a
    default gc follows and its result is the RemoveResult's `gc`."""
    names = [checkpoints] if isinstance(checkpoints, str) else list(checkpoints)
    s = _open(store, False)
    removed = _core.remove(s, names)
    return _core.RemoveResult(removed=removed.removed, gc=_gc(s)) if gc else removed


def export(store, checkpoint: str, out_dir, *, prefix: str = "", strip_prefix: bool = False,
           max_shard_bytes: int = 5 << 30, skip_unsupported: bool = False, overwrite: bool = False,
           threads: int = 0, progress=None) -> _core.ExportResult:
    """Writes the checkpoint's tensors as safetensors files in `out_dir`
    (`tessera export`): files, index_file, tensors, total_size, skipped, ..."""
    import os
    return _core.export_safetensors(_open(store, True), checkpoint, os.fspath(out_dir), prefix, strip_prefix,
                                    max_shard_bytes, skip_unsupported, overwrite, threads,
                                    _progress.callback(progress))
