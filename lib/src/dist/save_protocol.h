// The save protocol over a ControlPlane (tessera/distributed.h): its keys and
// the state one rank keeps for one save. Rank 0 coordinates (coordinator.cc),
// the others participate (participant.cc); save.cc holds the entry points.
//
// Keys live under P = "tessera/save/<n>/<checkpoint>/", n counting the saves made
// through this control plane (every rank makes the same saves in the same
// order, as with collectives):
//
//   ready      rank 0: "ok:<token>" once the store is open and the name free,
//              or "error:<failure>". The token (16 random hex digits) names
//              this save; the catalog records it with the checkpoint.
//   arrived    counter: each rank r >= 1 adds 1 once it has reported.
//   all_in     set by the rank whose add brought `arrived` to world - 1.
//   error/<r>  rank r >= 1: "<failure>", why its part failed (the message
//              reads "save of ... failed: rank r: ...").
//   decision   set once, by compare_set from empty: "commit" by rank 0 inside
//              its catalog transaction just before COMMIT, or "abort:<r>" by
//              a rank r whose wait for the outcome timed out. First one wins.
//   outcome    rank 0: "ok" after the commit, or "error:<failure>".
//   left       counter: every rank, rank 0 included, adds 1 as it leaves.
//
// A <failure> is "<kind>:<message>" (dist/failure.h): kind the error's class as its ErrorKind
// number in decimal (tessera/error.h: 4 is InvalidArgument, 0 the base
// Error), then the message. Every rank throws that class with that message,
// so the same bad shard is an InvalidArgument on every rank, not only on the
// rank that saw it. A kind this version does not know is thrown as Error.
//
// A rank's report (its manifest: chunk records, packs) is a file,
// <store>/tmp/save-<token>.rank-<r>, written under a temporary name and
// renamed, so it is there whole or not at all. Manifests reach hundreds of
// MiB at a million chunk references: the job's TCPStore never holds them.
//
// Normal case, in ControlPlane operations (over c10d, each is one Store
// call, and wait_get two: wait, then get):
//   rank r >= 1: wait_get(ready), add(arrived), wait_get(outcome), add(left):
//                4, two of which wait. The last to arrive also sets all_in.
//   rank 0:      set(ready), wait_get(all_in), delete_key x 3 (ready, arrived,
//                all_in), compare_set(decision), set(outcome), add(left): 8.
//   The last rank to leave also deletes outcome, decision and left (3).
// Rank 0 gathers in one wait whatever the world size; no count grows with it.
// 4 is the floor for rank r with c10d's operations and no key left behind:
// besides the two reads (ready, outcome) and one arrival signal, a key that
// all ranks read (outcome) can be deleted only once each has said it read it
// (add(left)) — c10d's wait sees keys appear, never disappear. A per-rank
// report key would cost its owner one more (a delete: c10d has no multi-key
// delete, and rank 0 deleting them would grow with the world size), which is
// why reports are files and arrival is a counter, as in torch elastic's
// store barrier.
//
// Who deletes what, and when:
//   - rank 0 deletes ready, arrived and all_in once it has gathered (every
//     rank had read ready before arriving), and each report file once read;
//   - rank r deletes its error/<r> after it has read the outcome (rank 0 has
//     read it by then);
//   - the rank whose add(left) reaches world deletes outcome, decision and
//     left — and, when the save failed, ready, arrived and all_in too, which
//     rank 0 may not have deleted (deleting a missing key is harmless);
//   - a rank whose save failed removes its own packs and report file.
// A rank that dies mid-save never leaves: its save's few small keys stay (no
// rank can tell it from a slow one).
//
// A rank that abstains (tessera::abstain: it failed before it could save,
// e.g. its Store::open threw) has no store handle and needs none: rank 0
// sets ready = "error:<failure>" at once, so no rank writes anything; a rank
// r >= 1 takes part as above with its failure as its part (error/<r>, no
// report file) and throws the save's failure with the others.
//
// No split outcome. A rank whose wait for the outcome times out does not
// guess: it writes decision = "abort:<r>" unless rank 0 already wrote
// "commit". If it wins, rank 0's transaction sees "abort" just before COMMIT
// and rolls back, and every rank fails with the same message. If rank 0 had
// decided to commit, the rank waits `timeout` more for the outcome; if it
// still does not come (rank 0 died after deciding), the rank takes the
// catalog's write lock — it gets it only once rank 0's transaction has
// committed, rolled back, or died (SQLite then rolls back the hot journal) —
// and reports what the catalog holds: checkpoint `name` with this save's
// token means committed. (Taking that lock needs write access to the
// catalog. If rank 0 is alive but holds its transaction past SQLite's busy
// timeout, the rank fails saying it could not tell — the one case where it
// does not know the answer, and says so.)
//
// Timeouts: rank 0 gives the others one `timeout` from the moment it is done
// with its own part; the others give rank 0 twice that for ready and for the
// outcome (it may wait a full timeout for a rank before it can answer).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dist/failure.h"
#include "engine/save/shard_writer.h"
#include "engine/store_impl.h"
#include "io/env.h"
#include "tessera/distributed.h"

namespace tessera::dist {

inline constexpr const char* kOk = "ok";
inline constexpr const char* kErrorPrefix = "error:";
inline constexpr const char* kCommit = "commit";
inline constexpr const char* kAbortPrefix = "abort:";

// "error:<failure>" (ready, outcome).
inline bool is_error(const std::string& s) { return s.rfind(kErrorPrefix, 0) == 0; }
inline std::string error_value(const Failure& f) { return kErrorPrefix + f.encode(); }
// REQUIRES: is_error(s).
inline Failure failure_of(const std::string& s) { return Failure::decode(s.substr(std::string(kErrorPrefix).size())); }

// 16 random hex digits: the token that names a save.
std::string new_token();

// One rank's view of one save.
struct Save {
  ControlPlane& plane;
  // This rank's store, opened by its caller; null for a rank that abstains
  // (it may have failed to open one), which then writes, reads and removes
  // no file.
  Store::Impl* store;
  const std::string& checkpoint;
  std::chrono::milliseconds timeout;
  int64_t rank, world;
  std::string prefix;  // P
  std::string failed;  // "save of checkpoint '<name>' failed: "

  std::string key(const std::string& k) const { return prefix + k; }
  std::optional<std::string> wait_get(const std::string& k, std::chrono::milliseconds limit) {
    return plane.wait_get(key(k), std::max(limit, std::chrono::milliseconds(1)));  // 0 means "forever" in c10d
  }
  // "20.0": `limit` in seconds, as messages state it.
  static std::string seconds(std::chrono::milliseconds limit);
  // REQUIRES: store.
  std::string report_path(const std::string& token, int64_t r) const {
    return store->tmp_dir() + "/save-" + token + ".rank-" + std::to_string(r);
  }
  // "save of checkpoint '<name>' failed: rank <r>: <what>", as `kind`.
  Failure rank_failure(ErrorKind kind, const std::string& what) const {
    return Failure{kind, failed + "rank " + std::to_string(rank) + ": " + what};
  }
  // Rank r >= 1 waited `waited` (twice the timeout) for rank 0's "ready".
  std::string coordinator_silent(std::chrono::milliseconds waited) const;
  // The failure every rank reports once decision = `abort` ("abort:<r>").
  std::string aborted(const std::string& abort) const;

  // Every rank calls this once as it leaves; the last one deletes the keys
  // that are still there.
  void leave(bool succeeded);
};

// A rank's report file: written whole (under a temporary name, then
// renamed) or not at all.
void write_report(Env& env, const std::string& path, const std::string& bytes);
std::string read_report(Env& env, const std::string& path);

// Writes this rank's part of the save into its store (engine::write_shards), or
// throws this rank's failure (a rank that abstains), and returns its
// manifest.
//
// Every rank saves through the store handle its caller opened (read-write:
// a rank r >= 1 needs the write lock only to read the committed truth, see
// "No split outcome"). Rank 0 checks that the name is free before ready.
using WritePart = std::function<engine::RankManifest()>;

// Rank 0's side of the save (coordinator.cc) and the others' (participant.cc).
SaveResult coordinate(Save& s, const WritePart& write_part, const SaveOptions& opts);
SaveResult participate(Save& s, const WritePart& write_part);
// Rank 0, failing before the save starts: tells the others at once (in
// "ready", so none writes its part) and throws `failure`.
[[noreturn]] void announce_failure(Save& s, const Failure& failure);

}  // namespace tessera::dist
