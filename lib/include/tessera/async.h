// Asynchronous saves: the call blocks only while the state's tensors are
// copied into host staging (pinned memory for CUDA tensors, one device-to-
// host copy per tensor on the current stream); hashing, compression, writing
// and the commit continue on a background thread. Training may modify its
// tensors as soon as save() returns.
//
// The staging memory is a pool owned by the AsyncSaver and reused across
// saves, so only the first save pays for pinning. Its size is bounded:
//   - by default it holds at most what the largest single save needed, so a
//     second save waits (inside save(), before copying) until the first has
//     released its staging;
//   - with `max_staging_bytes` >= two states' worth, saves overlap: the
//     second is copied while the first is still being written.
// Background saves run one at a time in call order (commits, and the
// distributed protocol's key sequence, keep the order of the calls).
//
// Requires the LibTorch layer (tessera_torch); entries built by
// tessera/torch.h and tessera/module.h copy from their at::Tensor, plain host
// views are copied byte for byte.
#pragma once

#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <string>

#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/store.h"

namespace tessera {

// A save in flight. Copyable; every copy refers to the same save.
class SaveHandle {
 public:
  SaveHandle() = default;
  // True once the save has committed or failed.
  bool done() const;
  // Waits for the save; returns its result or rethrows its error.
  SaveResult wait() const;
  // Seconds save() blocked the caller (waiting for staging memory plus the
  // copy), for reports.
  double blocked_seconds() const { return blocked_seconds_; }

 private:
  friend class AsyncSaver;
  std::shared_future<SaveResult> result_;
  double blocked_seconds_ = 0;
};

struct AsyncSaverOptions {
  // Upper bound on the staging pool (bytes). 0 (default): as large as the
  // largest single save so far, so consecutive saves wait for each other.
  // A save needing more than a non-zero bound throws InvalidArgument.
  uint64_t max_staging_bytes = 0;
};

class AsyncSaver {
 public:
  explicit AsyncSaver(AsyncSaverOptions options = {});
  // Waits for every save in flight (errors stay with their handles).
  ~AsyncSaver();
  AsyncSaver(const AsyncSaver&) = delete;
  AsyncSaver& operator=(const AsyncSaver&) = delete;

  // tessera::save (checkpoint.h) run in the background: single-process, or
  // distributed with options.plane set (tessera/distributed.h; the plane
  // must outlive the save and is used from the background thread). The save
  // keeps its own copy of the `store` handle, so the caller may drop its
  // one. Errors in the input (bad views) throw here; errors of the save
  // itself, a read-only store's included, come from the handle.
  SaveHandle save(const StateDict& state, Store& store, const std::string& checkpoint,
                  const SaveOptions& options = {});

  // Fills the staging pool for a state like `state` without saving, so that
  // the first save does not pay for pinning memory (~2-5 GB/s): call it once
  // at start-up. Throws InvalidArgument beyond max_staging_bytes.
  void reserve(const StateDict& state);

  // Bytes of host staging the pool holds now (leased or free).
  uint64_t staging_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
