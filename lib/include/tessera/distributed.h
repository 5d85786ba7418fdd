// Saving from many ranks at once.
//
// Every rank opens the store itself (Store::open(path), read-write: the
// first to get there creates it, and SQLite's locking makes a concurrent
// creation safe) and calls tessera::save (checkpoint.h) with its own shards
// and SaveOptions::plane set to the job's control plane. Each rank writes
// only its own chunks into its own packs and hands its chunk records to the
// coordinator (rank 0) as a file in the store, signalled through the control
// plane — c10d's Store, the TCPStore that torchrun already runs (see
// tessera/c10d.h). Rank 0 waits for all ranks at once, validates the whole
// state and commits it in one catalog transaction. No process-group
// collective is involved, so save works beside whatever process groups the
// job uses. A save costs each rank a handful of Store operations, none
// growing with the world size, and deletes the keys it made
// (lib/src/dist/save_protocol.h counts them).
//
// All ranks must make the call with the same checkpoint name, in the same
// order as their other saves through the plane, with handles to the same
// store (same path and file system). Rank 0's handle must be read-write
// (else every rank throws StoreError); another rank's may be read-only, but
// then it cannot read the committed truth from the catalog in the one case
// where it must (below), and fails saying it could not tell. It returns on every rank only after the
// commit, or throws on every rank with the cause (which rank failed and
// why): the class (tessera/error.h: the protocol carries its ErrorKind) and
// the message of the failure, whichever rank it happened on; an exception
// that is not one of tessera's classes is thrown as Error. A rank that dies
// (or never calls) makes the others fail after SaveOptions::timeout, with no
// checkpoint visible. The answer is the same on every rank even when rank 0
// is slower than the timeout: a rank that stops waiting aborts the save
// unless rank 0 has already decided to commit, in which case it waits for,
// or reads from the catalog, the committed truth.
//
// Loads need no coordination: every rank calls tessera::load (checkpoint.h)
// on its own, planning its own reads from the catalog. (A load with
// LoadOptions::replicas is collective over that group, to read each
// replicated byte once: tessera/replicas.h.)
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/store.h"

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

// Takes part in the distributed save of `checkpoint` (options.plane set) as
// tessera::save does, with this rank's failure instead of its state: for a
// rank that failed before it could save, e.g. one that could not open the
// store (Store::open threw) or describe its state. It needs no store. The save
// fails on every rank with this cause, thrown as `kind` (the message reads
// "save of checkpoint '<name>' failed: rank <r>: <what>"), instead of leaving
// the others waiting for their timeout; when rank 0 abstains, the others fail
// before writing anything. Always throws. REQUIRES: options.plane, as in save
// (InvalidArgument otherwise).
//
//   std::optional<tessera::Store> store;
//   try {
//     store = tessera::Store::open(path);
//   } catch (const tessera::Error& e) {
//     tessera::abstain(tessera::error_kind(e), e.what(), "step-100", options);
//   }
//   tessera::save(state, *store, "step-100", options);
[[noreturn]] void abstain(ErrorKind kind, const std::string& what, const std::string& checkpoint,
                          const SaveOptions& options);

// How the ranks of a collective fared, from what each shared: kinds[r] is -1
// where rank r succeeded, else the ErrorKind number of its failure. When
// several ranks fail, the lowest failing rank's failure decides the class
// every rank throws: the distributed save, the replicated load and the
// Python collectives all follow this rule, stated here once.
struct FailureAgreement {
  std::vector<int64_t> failed;  // the failing ranks, lowest first
  int64_t kind = -1;            // the lowest failing rank's kind: the class every rank throws

  bool ok() const { return failed.empty(); }
  // "1, 3": the failing ranks, for messages.
  std::string ranks() const;
};
FailureAgreement agree_on_failures(const std::vector<int64_t>& kinds);

}  // namespace tessera
