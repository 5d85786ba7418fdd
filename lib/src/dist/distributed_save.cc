// The save protocol over a ControlPlane. Keys live under
// "tessera/save/<n>/<checkpoint>/", n counting the saves made through this control plane
// (every rank makes the same saves in the same order, as with collectives):
//
//   ready      rank 0: "ok" once the store is open, or "error:<why>"
//   report/<r> rank r: "ok:" + encoded manifest (packs durable), or "error:<why>"
//   outcome    rank 0: "ok" after the commit, or "error:<why>"
//
// Every wait has the caller's timeout; a rank that never reports is named.
#include <cstdio>

#include "engine/commit.h"
#include "engine/manifest_codec.h"
#include "engine/retention.h"
#include "engine/shard_writer.h"
#include "tessera/distributed.h"
#include "tessera/error.h"

namespace tessera {
namespace {

constexpr const char* kOk = "ok";
constexpr const char* kErrorPrefix = "error:";

bool is_error(const std::string& s) { return s.rfind(kErrorPrefix, 0) == 0; }
std::string error_text(const std::string& s) { return s.substr(std::string(kErrorPrefix).size()); }

// Rethrows a failure reported by another rank with the class its message
// shows, so every rank can catch AlreadyExistsError, StoreError, ...
[[noreturn]] void throw_remote(const std::string& what) {
  if (what.find("already exists") != std::string::npos) throw AlreadyExistsError(what);
  if (what.find("is not a tessera") != std::string::npos || what.find("newer than") != std::string::npos)
    throw StoreError(what);
  throw Error(what);
}

}  // namespace

SaveResult save(const StateDict& state, const std::string& store_path, const std::string& checkpoint,
                ControlPlane& plane, const SaveOptions& options, const DistributedOptions& dist) {
  const int64_t rank = plane.rank(), world = plane.world_size();
  const std::string prefix = "tessera/save/" + std::to_string(plane.next_save_id()) + "/" + checkpoint + "/";
  const std::string failed = "save of checkpoint '" + checkpoint + "' failed: ";
  SaveOptions opts = options;
  opts.world_size = world;

  // Once done with its own part, the coordinator gives all ranks one
  // deadline; the others give it twice that (it may wait a full timeout for a
  // rank before it can answer).
  auto deadline = std::chrono::steady_clock::now() + dist.timeout;
  auto wait = [&](const std::string& key, const std::string& who, std::chrono::milliseconds limit) {
    auto v = plane.wait_get(prefix + key, std::max(limit, std::chrono::milliseconds(1)));
    if (!v) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", static_cast<double>(dist.timeout.count()) / 1000.0);
      throw Error(failed + who + " did not report within " + secs + " s (did it die?)");
    }
    return *v;
  };
  auto until_deadline = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  };

  // 1. Rank 0 opens the store for writing; the others follow read-only.
  std::optional<Store> store;
  if (rank == 0) {
    try {
      store = Store::open(store_path);
      std::lock_guard lock(store->impl().mu);
      if (!opts.overwrite && store->impl().catalog.find_checkpoint(checkpoint))
        throw AlreadyExistsError("checkpoint '" + checkpoint + "' already exists in store '" + store_path + "'");
    } catch (const std::exception& e) {
      plane.set(prefix + "ready", kErrorPrefix + std::string(e.what()));
      throw;
    }
    plane.set(prefix + "ready", kOk);
  } else {
    std::string ready = wait("ready", "the coordinator (rank 0)", 2 * dist.timeout);
    if (is_error(ready)) throw_remote(error_text(ready));
    store = Store::open_read_only(store_path);
  }

  // 2. Every rank writes its chunks and reports its manifest (or its failure).
  RankManifest mine;
  try {
    mine = write_shards(state, store->impl(), opts);
    mine.rank = rank;
  } catch (const std::exception& e) {
    const std::string why = failed + "rank " + std::to_string(rank) + ": " + e.what();
    plane.set(prefix + (rank == 0 ? std::string("outcome") : "report/" + std::to_string(rank)), kErrorPrefix + why);
    if (rank != 0) (void)plane.wait_get(prefix + "outcome", 2 * dist.timeout);  // leave together
    throw_remote(why);
  }
  if (rank != 0) plane.set(prefix + "report/" + std::to_string(rank), std::string("ok:") + encode_manifest(mine));

  // 3. The coordinator gathers, validates and commits; the others wait for the outcome.
  std::string outcome = kOk;
  if (rank == 0) {
    std::vector<RankManifest> all{mine};
    deadline = std::chrono::steady_clock::now() + dist.timeout;
    try {
      for (int64_t r = 1; r < world; ++r) {
        std::string report = wait("report/" + std::to_string(r), "rank " + std::to_string(r), until_deadline());
        if (is_error(report)) throw Error(error_text(report));
        all.push_back(decode_manifest(report.substr(3)));
      }
      commit_checkpoint(store->impl(), checkpoint, all, opts);
      mine.stats.removed = apply_keep_last_after_commit(store->impl(), opts.keep_last, checkpoint);
    } catch (const std::exception& e) {
      std::string what = e.what();
      outcome = kErrorPrefix + (what.rfind(failed, 0) == 0 ? what : failed + what);
    }
    plane.set(prefix + "outcome", outcome);
  } else {
    outcome = wait("outcome", "the coordinator (rank 0)", 2 * dist.timeout);
  }
  if (is_error(outcome)) {
    discard_packs(store->impl(), mine.packs);  // each rank removes its own packs
    throw_remote(error_text(outcome));
  }
  return mine.stats;
}

}  // namespace tessera
