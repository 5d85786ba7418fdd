// Saving from many ranks at once.
//
// Every rank calls save() with its own shards; each writes only its own
// chunks into its own packs and hands its chunk records to the coordinator
// (rank 0) as a file in the store, signalled through the control plane —
// c10d's Store, the TCPStore that torchrun already runs (see tessera/c10d.h).
// Rank 0 waits for all ranks at once, validates the whole state and commits
// it in one catalog transaction. No process-group collective is involved, so
// save works beside whatever process groups the job uses. A save costs each
// rank a handful of Store operations, none growing with the world size, and
// deletes the keys it made (lib/src/dist/save_protocol.h counts them).
//
// save() returns on every rank only after the commit, or throws on every rank
// with the cause (which rank failed and why). A rank that dies makes the
// others fail after `timeout`, with no checkpoint visible. The answer is the
// same on every rank even when rank 0 is slower than `timeout`: a rank that
// stops waiting aborts the save unless rank 0 has already decided to commit,
// in which case it waits for, or reads from the catalog, the committed truth.
//
// Loads need no coordination: every rank calls tessera::load (checkpoint.h)
// on its own, planning its own reads from the catalog opened read-only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/checkpoint.h"

namespace tessera {

// A key-value store shared by all ranks of a job: the operations of c10d's
// Store that the save protocol uses (tessera/c10d.h backs it with the job's
// TCPStore). Create one per job and keep it for the job's life, like a
// process group: it numbers the saves made through it, and all ranks must
// make the same saves in the same order. The save protocol's cost is counted
// in these operations (lib/src/dist/save_protocol.h); over c10d each is
// one Store call, wait_get two (wait, then get). Errors of the store itself
// are thrown.
class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // The value of `key` once some rank has set it; nullopt if `timeout`
  // passes first.
  virtual std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) = 0;
  // Atomically adds `delta` to the integer held by `key` (a missing key
  // holds 0) and returns the sum. The value reads back as decimal text.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  // Atomically: if `key` holds `expected`, or is missing and `expected` is
  // empty, sets it to `desired`. Returns the value `key` holds afterwards, so
  // the caller won when it returns `desired`. (A missing key with a
  // non-empty `expected` returns `expected` in c10d; don't rely on it.)
  virtual std::string compare_set(const std::string& key, const std::string& expected,
                                  const std::string& desired) = 0;
  // Removes `key`; false if it was not there.
  virtual bool delete_key(const std::string& key) = 0;

  // Numbers this rank's saves, so that each save uses fresh keys; all ranks
  // make the same saves in the same order.
  uint64_t next_save_id() { return saves_++; }

 private:
  uint64_t saves_ = 0;
};

// `world_size` control planes over one in-memory map, for ranks that are
// threads of one process (tests, single-host tools).
std::vector<std::unique_ptr<ControlPlane>> in_process_control_planes(int64_t world_size);

// How many keys the map behind `plane` holds (tests check that a save
// leaves none). REQUIRES: `plane` came from in_process_control_planes.
size_t in_process_key_count(const ControlPlane& plane);

struct DistributedOptions {
  // How long a rank waits for the others (default 5 minutes). A rank that
  // has not reported by then is taken as dead and the save fails. A rank
  // that waited twice this for rank 0's outcome aborts the save, unless rank
  // 0 has already decided to commit: then it waits once more and, if rank 0
  // stays silent, reports what the catalog holds.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  // The file system of the store, as StoreOptions::env (default: the
  // operating system's). Every rank's save goes through it.
  std::shared_ptr<Env> env;
};

// Collective over the ranks of `plane`: all must call it, with the same
// store path and checkpoint name, in the same order as their other saves.
// Rank 0 opens (or creates) the store read-write; the others open it
// read-only once rank 0 has. Throws the same error on every rank: the class
// (tessera/error.h: the protocol carries its ErrorKind) and the message of
// the failure, whichever rank it happened on; an exception that is not one of
// tessera's classes is thrown as Error.
SaveResult save(const StateDict& state, const std::string& store_path, const std::string& checkpoint,
                ControlPlane& plane, const SaveOptions& options = {}, const DistributedOptions& dist = {});

}  // namespace tessera
