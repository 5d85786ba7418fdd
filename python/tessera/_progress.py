"""Progress of saves and loads for Python callers.

`progress=` on tessera.save / tessera.load / tessera.dcp.StorageWriter /
StorageReader takes:

- None or False (default): nothing is reported, at no cost;
- True: a progress bar on stderr (tqdm's when tqdm is installed), shown only
  when stderr is a terminal;
- a callable: called with a Progress for each report, about 10 times a
  second from tessera's worker threads (one at a time), and once more with
  finished=True. An exception it raises is reported through
  sys.unraisablehook; the save or load goes on.
"""
from __future__ import annotations

import sys
import typing


class Progress(typing.NamedTuple):
    operation: str      # "save" or "load"
    done_bytes: int     # bytes processed so far by this process
    total_bytes: int    # bytes it will process (0: unknown)
    seconds: float      # since the operation started
    finished: bool      # the last report of the operation


def callback(progress):
    """The function tessera._core calls, f(operation, done, total, seconds,
    finished), for a `progress=` argument; None when nothing is reported."""
    if progress is None or progress is False:
        return None
    user = _default_bar() if progress is True else progress
    if user is None:
        return None
    if not callable(user):
        raise TypeError(f"progress must be None, a bool or a callable, got {type(progress).__name__}")
    return lambda *report: user(Progress(*report))


def _default_bar():
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineBar()
    return _TqdmBar(tqdm)


class _TqdmBar:
    def __init__(self, tqdm):
        self._tqdm, self._bar = tqdm, None

    def __call__(self, p: Progress) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=p.total_bytes or None, desc=p.operation, unit="B", unit_scale=True,
                                   unit_divisor=1024, leave=False)
        self._bar.update(p.done_bytes - self._bar.n)
        if p.finished:
            self._bar.close()
            self._bar = None


class _LineBar:
    """One line on stderr, redrawn in place and erased at the end (as the CLI's)."""

    def __call__(self, p: Progress) -> None:
        if p.finished:
            sys.stderr.write("\r\033[K")
        else:
            rate = p.done_bytes / p.seconds if p.seconds > 0 else 0.0
            pct = f"{100 * p.done_bytes // p.total_bytes}%  " if p.total_bytes else ""
            eta = f"  ETA {(p.total_bytes - p.done_bytes) / rate:.0f} s" if rate and p.total_bytes else ""
            sys.stderr.write(f"\r\033[K{p.operation}  {pct}{p.done_bytes / 2**20:.1f} of "
                             f"{p.total_bytes / 2**20:.1f} MiB  {rate / 2**20:.1f} MiB/s{eta}")
        sys.stderr.flush()
