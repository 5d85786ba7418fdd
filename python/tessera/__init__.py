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

The work happens in the C++ library (tessera._core); see README.md.
"""
from ._core import (AlreadyExistsError, CorruptionError, Error, InvalidArgument, NotFoundError, Store, StoreError,
                    describe)
from ._progress import Progress
from .api import async_save, load, reserve_staging, save
from .tools import diff, export, gc, ls, rm, show, verify

__all__ = ["save", "async_save", "reserve_staging", "load", "Progress", "Store", "describe", "import_dcp", "dcp",
           "ls", "show", "verify", "diff", "rm", "gc", "export", "Error", "StoreError", "NotFoundError",
           "AlreadyExistsError", "InvalidArgument", "CorruptionError"]


def __getattr__(name):  # tessera.dcp and tessera.import_dcp load on first use
    import importlib
    if name == "dcp":
        return importlib.import_module(".dcp", __name__)
    if name == "import_dcp":
        return importlib.import_module(".import_dcp", __name__).import_dcp
    raise AttributeError(f"module 'tessera' has no attribute '{name}'")
