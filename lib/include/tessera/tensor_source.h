// TensorSource: what stands behind a tensor entry whose bytes are not plain
// host memory the library may read and write directly (a CUDA tensor, a
// Python-staged buffer), or that wants to hear when a save or load is done
// with it (an at::Tensor filled in place, a cast on load).
//
// A TensorEntry (tessera/state_dict.h) with a null source is plain host
// memory: saves read view.data, loads write it, and nothing is called. With
// a source, saves and loads call its methods as described below. The
// LibTorch layer's sources hold an at::Tensor (tessera/torch.h builds
// entries with them); the Python binding's hold Python callables.
//
// Lifetime: entries hold their source by shared_ptr, so a source lives as
// long as the last copy of its entry. Memory a source hands out (the views
// it returns) must stay valid until the matching saved() or loaded() call,
// or until the save or load returns, whichever comes first.
//
// One source serves one save or one load at a time; its methods may be
// called from the library's worker threads, one call at a time per source
// (each call happens-before the next).
#pragma once

#include <string>

#include "tessera/state_dict.h"

namespace tessera {

class TensorSource {
 public:
  virtual ~TensorSource() = default;

  // Whether the entry's bytes pass through host staging: view.data is not
  // host memory (it may be null), so a save reads host_view_for_save() and
  // a load writes host_target_for_load(). Must not change over the
  // entry's life. Staged entries load in waves of at most
  // LoadOptions::max_staging_bytes.
  virtual bool staged() const = 0;

  // Whether a load may convert: when the saved dtype differs from
  // view.dtype and LoadOptions::allow_cast is set, the load asks
  // host_target_for_load(saved_dtype) for a view in the saved dtype and
  // calls loaded(true), which converts. Without it such a load throws
  // InvalidArgument before reading anything.
  virtual bool can_cast() const { return false; }

  // Save, staged sources only: returns the host view whose bytes are saved
  // (e.g. a CUDA tensor copied into pinned host memory). It must have the
  // entry's dtype, element size, sizes, global shape and offsets (its
  // strides may differ), else the save throws InvalidArgument.
  // Called at most once per save, lazily, by the worker thread that first
  // needs the entry's bytes; workers take entries in name order, so the
  // copies of later entries overlap the hashing and writing of earlier
  // ones. Not called when this rank writes none of the entry's pieces.
  // May block (e.g. until staging memory is free). What it throws fails
  // the save (every later use of the entry's bytes rethrows it).
  virtual TensorView host_view_for_save() = 0;

  // Save: called once every piece of the entry this rank saves has been
  // hashed and written (or found in the store), so staging memory may be
  // reused; from a worker thread, after host_view_for_save() returned (or
  // threw). Called for staged and unstaged sources alike, at most once per
  // save; not when this rank saves none of the entry's pieces. A failing
  // save may skip it (the caller then reclaims its staging itself). Must
  // not throw.
  virtual void saved() {}

  // Load: returns the host view the saved bytes land in. Called when the
  // source is staged, or when the saved dtype differs from view.dtype
  // (`saved_dtype` then names it; only when can_cast()). The view must
  // cover the entry's box (its sizes and offsets) with the element size of
  // `saved_dtype`, else the load throws InvalidArgument.
  // Called at most once per load, on the thread that called load, when the
  // entry's wave starts (after every earlier wave's loaded() calls). What it
  // throws fails the load.
  virtual TensorView host_target_for_load(const std::string& saved_dtype) = 0;

  // Load: called once the entry's bytes have landed (and, with
  // LoadOptions::verify, been checked), on the thread that called load,
  // after every read of the entry's wave. `cast` is true when they landed
  // in a host_target_for_load(saved_dtype) view of another dtype than
  // view.dtype, so they must be converted. Called for every source whose
  // entry the checkpoint holds, at most once per load; not called for
  // entries of a wave that failed. What it throws fails the load.
  virtual void loaded(bool cast) { (void)cast; }
};

}  // namespace tessera
