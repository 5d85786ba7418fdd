"""tessera: a checkpoint store for PyTorch training state.

- tessera.save / tessera.async_save / tessera.load: nested state dicts
  (tensors, DTensors, values) to and from a store, over the default process
  group (api.py); GPU tensors pass through pinned staging (_staging.py);
  tessera.reserve_staging(state) pins the async staging at start-up.
- tessera.dcp.StorageWriter / StorageReader: tessera as the storage of
  torch.distributed.checkpoint (dcp.save, dcp.load, dcp.async_save).
- tessera.import_dcp: copy a DCP checkpoint directory into a store
  (also `python -m tessera import-dcp DIR STORE CHECKPOINT`).
- progress= on save/load and the DCP storage classes: True for a bar on a
  terminal, or a callable taking a tessera.Progress (_progress.py).
- tessera.ls / show / verify / diff / rm / gc / export: the `tessera`
  command's verbs as functions (tools.py).
- tessera.Store: open an existing store (create=True to make one);
  .checkpoints(metadata=False), .checkpoint(name).

Results are typed, read-only records (classes of tessera._core, typed in
_core.pyi): save -> SaveResult, load -> LoadResult, ls / Store.checkpoints
-> [CheckpointSummary], show / describe -> [EntryInfo], verify ->
VerifyReport, diff -> DiffReport, gc -> GcResult, rm -> RemoveResult,
export -> ExportResult, import_dcp -> SaveResult. Read their attributes
(r.written_bytes); r.to_dict() gives plain dicts (e.g. for json.dumps).

Deprecated: before 0.5.0 the results were dicts. For this one release
they keep the dict-style reads (r["written_bytes"], "metadata" in r,
r.get(k), r.keys(), r.items(), dict(r)), each warning with a
DeprecationWarning; the next release removes them. A key that was absent
from the dict (a checkpoint's metadata not asked for, a diff's stats
without values=True) is an attribute holding None.

The work happens in the C++ library (tessera._core); see README.md.
"""
from ._core import (AlreadyExistsError, CatalogProblem, CheckpointSummary, CorruptionError, DamagedChunk, DiffReport,
                    EntryDiff, EntryInfo, Error, ExportedFile, ExportResult, GcResult, InvalidArgument, LoadResult,
                    NotFoundError, RemoveResult, SaveResult, Store, StoreError, ValueStats, VerifyReport, describe)
from ._progress import Progress
from .api import async_save, load, reserve_staging, save
from .tools import diff, export, gc, ls, rm, show, verify

__all__ = ["save", "async_save", "reserve_staging", "load", "Progress", "Store", "describe", "import_dcp", "dcp",
           "ls", "show", "verify", "diff", "rm", "gc", "export", "Error", "StoreError", "NotFoundError",
           "AlreadyExistsError", "InvalidArgument", "CorruptionError",
           "SaveResult", "LoadResult", "CheckpointSummary", "EntryInfo", "VerifyReport", "DamagedChunk",
           "CatalogProblem", "DiffReport", "EntryDiff", "ValueStats", "GcResult", "RemoveResult", "ExportResult",
           "ExportedFile"]


def __getattr__(name):  # tessera.dcp and tessera.import_dcp load on first use
    import importlib
    if name == "dcp":
        return importlib.import_module(".dcp", __name__)
    if name == "import_dcp":
        return importlib.import_module(".import_dcp", __name__).import_dcp
    raise AttributeError(f"module 'tessera' has no attribute '{name}'")
